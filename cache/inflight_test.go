package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// heldReadStore holds a read of the store, armed once: the read has its
// answer, and waits until released to return it. It is the window in
// which another gateway stores a newer version, which this one hears of
// (or, cut off from the bus, drops its whole tier for) while its own
// read is still under way.
type heldReadStore struct {
	cache.Store
	armed   atomic.Bool
	reading chan struct{} // closed when the armed read has its answer
	release chan struct{}
}

func newHeldReadStore(s cache.Store) *heldReadStore {
	return &heldReadStore{Store: s, reading: make(chan struct{}), release: make(chan struct{})}
}

func (s *heldReadStore) Get(ctx context.Context, key string) (cache.Entry, error) {
	e, err := s.Store.Get(ctx, key)
	if s.armed.CompareAndSwap(true, false) {
		close(s.reading)
		<-s.release
	}
	return e, err
}

// A read of the store under way when a newer version is announced (for a
// key this gateway did not hold), or when the tier is dropped because the
// bus came back, must not leave its older value in the tier: it would be
// served, unflagged, until the key changes again.
func TestReadUnderWayDoesNotKeepAnOlderVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// newer happens while the read is under way, after the store got
		// version v.
		newer func(bus *fakeBus, key string, v uint64)
	}{
		{"a newer version announced", func(bus *fakeBus, key string, v uint64) {
			bus.deliver(cache.Change{Key: key, Version: v, Origin: "peer", Seq: 1})
		}},
		{"the tier dropped as the bus came back", func(bus *fakeBus, _ string, _ uint64) {
			bus.mu.Lock()
			h := bus.h
			bus.mu.Unlock()
			h.Lost(errors.New("cut"))
			h.Resumed()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
			store := newHeldReadStore(f.store)
			bus := &fakeBus{}
			c := f.cache(t, func(o *cache.Options) { o.Store, o.Bus, o.Owner = store, bus, "me" })
			ctx := context.Background()
			old := cache.Entry{Key: "counter/1", Value: []byte(`{"n":1,"square":1}`), Version: 100, ComputedAt: f.clock.Now()}
			require.NoError(t, f.store.Put(ctx, old))

			store.armed.Store(true)
			got := make(chan cache.Result, 1)
			go func() {
				r, err := c.Get(ctx, "counter/1")
				assert.NoError(t, err)
				got <- r
			}()
			<-store.reading // the read has version 100
			newer := old
			newer.Version, newer.Value = 200, []byte(`{"n":1,"square":1,"again":true}`)
			require.NoError(t, f.store.Put(ctx, newer)) // by another gateway
			tc.newer(bus, "counter/1", 200)
			close(store.release)
			assert.Equal(t, uint64(100), (<-got).Version, "the read answers with what it read")

			r, err := c.Get(ctx, "counter/1")
			require.NoError(t, err)
			assert.Equal(t, uint64(200), r.Version, "the next read serves the newer version, not the older one the read under way found")
		})
	}
}
