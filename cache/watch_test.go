package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

// A watcher hears of every write of its key (refresh, set, invalidate, a
// dependency's cascade) through one slot: many changes it has not looked
// at yet are one signal, with the newest version.
func TestWatchCoalescesIntoOneSlot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	ctx := context.Background()

	_, err := c.Watch("square/x")
	require.Error(t, err, "a malformed key is refused")
	w, err := c.Watch("square/012") // made canonical
	require.NoError(t, err)
	require.Equal(t, "square/12", w.Key())
	other, err := c.Watch("square/13")
	require.NoError(t, err)
	defer other.Stop()

	var last uint64
	for range 50 {
		r, err := c.Refresh(ctx, "square/12")
		require.NoError(t, err)
		last = r.Version
	}
	require.Len(t, w.C, 1, "one pending signal, however many changes")
	<-w.C
	require.Equal(t, last, w.Version())
	require.Empty(t, other.C, "another key's watcher hears nothing")

	require.NoError(t, c.Invalidate(ctx, "square/12"))
	<-w.C
	require.Greater(t, w.Version(), last, "a deletion is a change too")

	w.Stop()
	_, err = c.Refresh(ctx, "square/12")
	require.NoError(t, err)
	require.Empty(t, w.C, "a stopped watch hears nothing")
}

// GetAtLeast reads past an in-process copy older than the version a change
// announced: here another cache (another gateway) wrote the store.
func TestGetAtLeastReadsPastAnOldCopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	a, b := f.cache(t), f.cache(t)
	ctx := context.Background()
	old, err := a.Get(ctx, "square/3")
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	fresh, err := b.Refresh(ctx, "square/3")
	require.NoError(t, err)
	require.Greater(t, fresh.Version, old.Version)

	r, err := a.Get(ctx, "square/3")
	require.NoError(t, err)
	require.Equal(t, old.Version, r.Version, "a still holds its copy")
	r, err = a.GetAtLeast(ctx, "square/3", fresh.Version)
	require.NoError(t, err)
	require.Equal(t, fresh.Version, r.Version)
	r, err = a.GetAtLeast(ctx, "square/3", fresh.Version+1000)
	require.NoError(t, err, "a version the store does not have yet: the newest there is")
	require.Equal(t, fresh.Version, r.Version)
}
