package cache_test

import (
	"context"
	"testing"

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
