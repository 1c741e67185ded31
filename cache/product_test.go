package cache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/primers"
)

// InvalidateProducts (a SQL product's statement changed): every value of
// the product goes, in the tier and the store, absent keys are forgotten,
// other products keep theirs, and a computation under way with the old
// statement is not kept, even for a key nothing stored yet.
func TestInvalidateProducts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var statement atomic.Value
	statement.Store("old")
	entered, release := make(chan struct{}), make(chan struct{})
	var qRuns atomic.Int64
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "p", Params: []primers.Param{{Name: "id", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, id int64) (string, error) {
			s := statement.Load().(string)
			switch id {
			case 3:
				if s == "old" {
					return "", fmt.Errorf("%w: none", primers.ErrNoData)
				}
			case 4:
				if s == "old" {
					close(entered)
					<-release
				}
			}
			return fmt.Sprintf("%s %d", s, id), nil
		})},
		primers.Product{Name: "q", Primer: primers.PrimerFunc(func(context.Context, primers.Key) (any, error) {
			return qRuns.Add(1), nil
		})})
	store := memory.New()
	c, err := cache.New(cache.Options{Registry: reg, Store: store})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	value := func(key string) string {
		t.Helper()
		r, err := c.Get(ctx, key)
		require.NoError(t, err, key)
		return string(r.Value)
	}
	assert.Equal(t, `"old 1"`, value("p/1"))
	assert.Equal(t, `"old 2"`, value("p/2"))
	assert.Equal(t, "1", value("q"))
	_, err = c.Get(ctx, "p/3")
	require.ErrorIs(t, err, primers.ErrNoData)
	slow := make(chan string)
	go func() {
		r, err := c.Get(ctx, "p/4")
		if err != nil {
			slow <- err.Error()
			return
		}
		slow <- string(r.Value)
	}()
	<-entered

	statement.Store("new")
	n, err := c.InvalidateProducts(ctx, []string{"p"}, store)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "p/1 and p/2 (p/4 is not stored yet)")
	close(release)
	assert.Equal(t, `"old 4"`, <-slow, "the request under way finishes with what it started")

	assert.Equal(t, `"new 1"`, value("p/1"))
	assert.Equal(t, `"new 4"`, value("p/4"), "the old computation was not kept")
	assert.Equal(t, `"new 3"`, value("p/3"), "the absent key was forgotten")
	assert.Equal(t, "1", value("q"))
	assert.Equal(t, int64(1), qRuns.Load(), "another product keeps its value")

	// A product no longer registered: its stored values go too.
	n, err = c.InvalidateProducts(ctx, []string{"gone", "q"}, store)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "2", value("q"))
}
