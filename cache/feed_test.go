package cache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/primers"
)

// Two gateways share a store. When one refreshes, sets or invalidates a key,
// the other stops serving its in-process copy within a few feed intervals.
func TestChangeFeedKeepsGatewaysCoherent(t *testing.T) {
	t.Parallel()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	var runs atomic.Int64
	reg := primers.NewRegistry()
	require.NoError(t, reg.Register(primers.Product{Name: "counter", Params: intParam,
		Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { return n*1000 + runs.Add(1), nil })}))
	open := func(owner string) *cache.Cache {
		c, err := cache.New(cache.Options{Registry: reg, Store: s, Owner: owner, FeedInterval: 10 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := open("gw-a"), open("gw-b")
	ctx := context.Background()
	bound := 50 * 10 * time.Millisecond // generous for -race on 2 cores; typical is one interval

	first, err := a.Get(ctx, "counter/1")
	require.NoError(t, err)
	fromB, err := b.Get(ctx, "counter/1")
	require.NoError(t, err)
	require.Equal(t, first.Version, fromB.Version, "b read a's value from the store")
	require.Equal(t, cache.TierStore, fromB.Tier)

	seenBy := func(c *cache.Cache, version uint64) func() bool {
		return func() bool {
			r, err := c.Get(ctx, "counter/1")
			return err == nil && r.Version == version
		}
	}
	refreshed, err := a.Refresh(ctx, "counter/1")
	require.NoError(t, err)
	require.Eventually(t, seenBy(b, refreshed.Version), bound, 5*time.Millisecond, "b drops the old value after a's refresh")

	set, err := b.Set(ctx, "counter/1", 42)
	require.NoError(t, err)
	require.Eventually(t, seenBy(a, set.Version), bound, 5*time.Millisecond, "a sees b's set")
	runsBefore := runs.Load()

	require.NoError(t, a.Invalidate(ctx, "counter/1"))
	require.Eventually(t, func() bool {
		r, err := b.Get(ctx, "counter/1")
		return err == nil && r.Version > set.Version && string(r.Value) != "42"
	}, bound, 5*time.Millisecond, "b recomputes after a's invalidation")
	require.Equal(t, runsBefore+1, runs.Load(), "the invalidated key was recomputed once")
}
