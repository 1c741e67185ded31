package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// A request's reads are recorded by the cache: each read method records
// what it returns, once per key and version, with whether the product is
// public; the products a primer reads are the product's, not the request's;
// and a context that records nothing costs nothing to read with.
func TestReadsRecordedByTheCache(t *testing.T) {
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), Auth: primers.Auth{Public: true}})
	f.register(t, primers.Product{Name: "sum", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var sq map[string]int64
		if err := primers.Read(ctx, fmt.Sprintf("square/%d", n), &sq); err != nil {
			return 0, err
		}
		return sq["square"] + n, nil
	})})
	c := f.cache(t)

	// Nothing recorded without WithReads.
	_, err := c.Get(context.Background(), "square/1")
	require.NoError(t, err)

	ctx, reads := cache.WithReads(context.Background())
	r1, err := c.Get(ctx, "sum/2") // a miss: its primer reads square/2
	require.NoError(t, err)
	_, err = c.Get(ctx, "sum/2") // a hit, the same version: once
	require.NoError(t, err)
	k, err := f.reg.Key("square", int64(1))
	require.NoError(t, err)
	r2, err := c.GetKey(ctx, k)
	require.NoError(t, err)
	many := c.GetMany(ctx, []string{"square/3", "nope/1"})
	require.NoError(t, many[0].Err)
	require.Error(t, many[1].Err)
	r4, err := c.GetAtLeast(ctx, "square/4", 0)
	require.NoError(t, err)

	got := reads.List()
	require.Len(t, got, 4, "%+v", got)
	assert.Equal(t, []string{"sum/2", "square/1", "square/3", "square/4"}, []string{got[0].Key, got[1].Key, got[2].Key, got[3].Key},
		"square/2, which sum/2's primer read, is not the request's read")
	assert.Equal(t, r1.Version, got[0].Version)
	assert.Equal(t, r2.Version, got[1].Version)
	assert.Equal(t, r4.ComputedAt, got[3].ComputedAt)
	assert.False(t, got[0].Public, "sum is not public")
	assert.True(t, got[1].Public, "square is public, noted at read time")

	// JSON: as extensions.kck.products shows it (the version a string).
	b, err := json.Marshal(got[1])
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"key":"square/1","version":"%d","computedAt":%q,"stale":false}`, r2.Version, r2.ComputedAt.Format("2006-01-02T15:04:05.999999999Z07:00")), string(b))

	// An update's outcome is not a read unless its caller records it.
	res, err := c.Set(ctx, "square/9", map[string]int64{"n": 9})
	require.NoError(t, err)
	assert.Equal(t, 4, reads.Len())
	c.Record(ctx, res)
	assert.Equal(t, 5, reads.Len())

	// A nested record (a batch's operation) shadows the outer one.
	inner, innerReads := cache.WithReads(ctx)
	_, err = c.Get(inner, "square/1")
	require.NoError(t, err)
	assert.Equal(t, 1, innerReads.Len())
	assert.Equal(t, 5, reads.Len())
}
