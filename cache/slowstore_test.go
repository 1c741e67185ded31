package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// slowStore delays every call into a real store by delay, as a store
// under load or across a slow link would; a caller's deadline cuts the
// wait short, as it does a network round trip.
type slowStore struct {
	cache.Store
	delay time.Duration
	calls atomic.Int64
}

func (s *slowStore) wait(ctx context.Context) error {
	s.calls.Add(1)
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowStore) Get(ctx context.Context, key string) (cache.Entry, error) {
	if err := s.wait(ctx); err != nil {
		return cache.Entry{}, err
	}
	return s.Store.Get(ctx, key)
}

func (s *slowStore) Put(ctx context.Context, e cache.Entry) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Store.Put(ctx, e)
}

func (s *slowStore) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	if err := s.wait(ctx); err != nil {
		return false, err
	}
	return s.Store.Acquire(ctx, lease, owner, ttl)
}

func (s *slowStore) Release(ctx context.Context, lease, owner string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Store.Release(ctx, lease, owner)
}

// A store that takes 200 ms a call (issue 14): hits from the in-process
// tier never wait on it, a miss is bounded by the request's deadline (the
// store wait is cut short, the error is the deadline's), and a value past
// its soft TTL is served stale at once while its refresh goes through the
// slow store in the background.
func TestSlowStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), SoftTTL: time.Minute, TTL: time.Hour})
	slow := &slowStore{Store: f.store, delay: 200 * time.Millisecond}
	c := f.cache(t, func(o *cache.Options) { o.Store = slow })
	ctx := context.Background()

	first, err := c.Get(ctx, "square/3")
	require.NoError(t, err)
	require.Equal(t, cache.TierComputed, first.Tier)

	// Hits: no store call at all, so the store's latency cannot show.
	calls := slow.calls.Load()
	for range 50 {
		r, err := c.Get(ctx, "square/3")
		require.NoError(t, err)
		require.Equal(t, cache.TierMemory, r.Tier)
		require.False(t, r.Stale)
	}
	require.Equal(t, calls, slow.calls.Load(), "hits do not touch the store")

	// A miss under a deadline shorter than one store call: the deadline's
	// error, returned when the deadline passes, not after the store's
	// calls (200 ms each, several per miss). The bound checked is a hang
	// guard, not a latency claim.
	mctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	began := time.Now()
	_, err = c.Get(mctx, "square/4")
	cancel()
	require.True(t, errors.Is(err, context.DeadlineExceeded), "a miss past its deadline: %v", err)
	require.Less(t, time.Since(began), 30*time.Second)
	require.Equal(t, int64(1), f.counter("square").Load(), "the timed-out miss ran no primer")

	// Soft-expired: served stale from memory without waiting on the store;
	// the background refresh (through the slow store) replaces it.
	f.clock.Advance(2 * time.Minute)
	calls = slow.calls.Load()
	r, err := c.Get(ctx, "square/3")
	require.NoError(t, err)
	require.True(t, r.Stale)
	require.Equal(t, cache.TierMemory, r.Tier)
	require.Equal(t, first.Version, r.Version)
	require.Eventually(t, func() bool {
		r, err := c.Get(ctx, "square/3")
		return err == nil && !r.Stale && r.Version > first.Version
	}, 2*time.Minute, 5*time.Millisecond, "the background refresh replaces the stale value")
	require.Greater(t, slow.calls.Load(), calls, "the refresh went through the store")
}
