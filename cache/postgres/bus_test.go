package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/primers"
)

// Two gateways on one PostgreSQL store with no NATS: the store's
// LISTEN/NOTIFY bus keeps them coherent. A refresh on one replaces the
// other's copy (the value travels in the notification); a value too large
// for a notification travels without it, and the other reads the store.
func TestStoreBusKeepsGatewaysCoherent(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "p", Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, n int64) (string, error) {
			return strings.Repeat("x", int(n)) + time.Now().Format(time.RFC3339Nano), nil
		})})
	gateway := func() *cache.Cache {
		s := open(t, cfg)
		b := s.Bus(nil)
		c, err := cache.New(cache.Options{Registry: reg, Store: s, Bus: b})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
		require.Eventually(t, b.Connected, time.Minute, 5*time.Millisecond)
		return c
	}
	a, b := gateway(), gateway()
	for _, key := range []string{"p/10", "p/9000"} {
		_, err := a.Get(ctx(t), key)
		require.NoError(t, err)
		_, err = b.Get(ctx(t), key)
		require.NoError(t, err)
		r, err := a.Refresh(ctx(t), key)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			got, err := b.Get(ctx(t), key)
			return err == nil && got.Version == r.Version
		}, time.Minute, 5*time.Millisecond, "b serves a's refresh of %s", key)
	}
	r, err := b.Get(ctx(t), "p/10")
	require.NoError(t, err)
	assert.Equal(t, cache.TierMemory, r.Tier, "the small value came with its notification")
}

// The listening connection cut (its backend terminated): once it listens
// again, the gateway drops its tier and serves the store's newest value,
// which it was never told of. Before the cut its hits are not flagged
// stale: the bus connects in Subscribe, and the cache knows it is up.
func TestStoreBusLostThenResumed(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "p", Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { return n, nil })})
	s := open(t, cfg)
	b := s.Bus(nil)
	c, err := cache.New(cache.Options{Registry: reg, Store: s, Bus: b})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
	require.True(t, c.BusConnected(), "listening once the cache is made")
	first, err := c.Get(ctx(t), "p/1")
	require.NoError(t, err)
	r, err := c.Get(ctx(t), "p/1")
	require.NoError(t, err)
	require.Equal(t, cache.TierMemory, r.Tier)
	assert.False(t, r.Stale, "a hit is not flagged stale")

	// A newer value in the store that this gateway is not told of.
	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "p/1", Value: []byte("2"), Version: first.Version + 1, ComputedAt: time.Now()}))
	r, err = c.Get(ctx(t), "p/1")
	require.NoError(t, err)
	require.Equal(t, first.Version, r.Version, "served from memory")

	admin, err := pgx.Connect(ctx(t), cfg.URL)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	// The pid first, then that backend alone: a filter and a terminate in
	// one WHERE may be evaluated in either order.
	rows, err := admin.Query(ctx(t), `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
		"LISTEN "+pgx.Identifier{"kck_bus_" + cfg.Schema}.Sanitize())
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Len(t, pids, 1, "one listening connection")
	var cut bool
	require.NoError(t, admin.QueryRow(ctx(t), `SELECT pg_terminate_backend($1, 10000)`, pids[0]).Scan(&cut))
	require.True(t, cut, "the listening connection terminated")
	require.Eventually(t, func() bool {
		r, err := c.Get(ctx(t), "p/1")
		return err == nil && r.Version == first.Version+1 && !r.Stale && c.BusConnected()
	}, time.Minute, 10*time.Millisecond, "listening again, the tier dropped: the store's value served")
}

// Many refreshes at once on one gateway reach the other in the order they
// were announced: it never takes one for a missed announcement, so it
// keeps its tier (seen: NOTIFYs sent on the pool's connections at once,
// and numbered before they were sent, arrived out of order, and the other
// gateway dropped its whole tier hundreds of times a minute).
func TestStoreBusKeepsEachGatewaysOrder(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "p", Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, n int64) (string, error) { return time.Now().Format(time.RFC3339Nano), nil })})
	gateway := func() *cache.Cache {
		s := open(t, cfg)
		b := s.Bus(nil)
		c, err := cache.New(cache.Options{Registry: reg, Store: s, Bus: b})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
		return c
	}
	a, b := gateway(), gateway()
	const keys, rounds = 20, 10
	for k := range keys + 1 { // p/0 stays as it is: b's witness
		_, err := b.Get(ctx(t), fmt.Sprintf("p/%d", k))
		require.NoError(t, err)
	}
	_, held := b.Peek("p/0")
	require.True(t, held)

	var wg sync.WaitGroup
	last := make([]uint64, keys)
	for k := range keys {
		wg.Go(func() {
			for range rounds {
				r, err := a.Refresh(ctx(t), fmt.Sprintf("p/%d", k+1))
				assert.NoError(t, err)
				last[k] = r.Version
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		if _, held := b.Peek("p/0"); !held {
			return true // b dropped its tier: said below
		}
		for k := range keys {
			if v, ok := b.Peek(fmt.Sprintf("p/%d", k+1)); !ok || v != last[k] {
				return false
			}
		}
		return true
	}, time.Minute, 5*time.Millisecond, "b holds a's last refresh of every key, from its announcements")
	_, held = b.Peek("p/0")
	assert.True(t, held, "b never dropped its tier: no announcement came out of order")
}

// The store answers who holds a lease with a plain read.
func TestLeaseHolder(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	holder, err := s.LeaseHolder(ctx(t), "follow/source")
	require.NoError(t, err)
	assert.Empty(t, holder)
	ok, err := s.Acquire(ctx(t), "follow/source", "me", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	holder, err = s.LeaseHolder(ctx(t), "follow/source")
	require.NoError(t, err)
	assert.Equal(t, "me", holder)
	require.NoError(t, s.Release(ctx(t), "follow/source", "me"))
	holder, err = s.LeaseHolder(ctx(t), "follow/source")
	require.NoError(t, err)
	assert.Empty(t, holder, "released")
}
