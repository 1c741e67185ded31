package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/primers"
)

// busGateways opens n caches ("gateways") over the fixture's store, each
// with its own connection to one bus, on the wall clock.
func busGateways(t *testing.T, f *fixture, srv *natstest.Server, n int, opts ...func(*cache.Options)) []*cache.Cache {
	t.Helper()
	cluster := natstest.Cluster(t)
	out := make([]*cache.Cache, n)
	for i := range out {
		owner := string(rune('a'+i)) + "-" + cluster
		out[i] = f.cache(t, append([]func(*cache.Options){func(o *cache.Options) {
			o.Owner, o.Bus, o.Clock = owner, natstest.Bus(t, srv, cluster, owner), nil
		}}, opts...)...)
	}
	return out
}

// bound is how long a test waits for an announcement to arrive: long, for
// -race on a busy 2-core machine; typically it takes a millisecond.
const bound = time.Minute

// Two gateways share a store. When one refreshes, sets or invalidates a
// key, the other follows at once: an announced value replaces its copy
// (served from memory, no store read), a deletion drops it.
func TestBusKeepsGatewaysCoherent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	gws := busGateways(t, f, natstest.Start(t), 2)
	a, b := gws[0], gws[1]
	ctx := context.Background()

	first, err := a.Get(ctx, "counter/3")
	require.NoError(t, err)
	fromB, err := b.Get(ctx, "counter/3")
	require.NoError(t, err)
	require.Equal(t, first.Version, fromB.Version, "b read a's value from the store")
	require.Equal(t, cache.TierStore, fromB.Tier)

	refreshed, err := a.Refresh(ctx, "counter/3")
	require.NoError(t, err)
	gets := f.store.gets.Load()
	require.Eventually(t, func() bool { v, ok := b.Peek("counter/3"); return ok && v == refreshed.Version }, bound, time.Millisecond,
		"b holds a's refreshed value")
	r, err := b.Get(ctx, "counter/3")
	require.NoError(t, err)
	assert.Equal(t, cache.TierMemory, r.Tier)
	assert.Equal(t, gets, f.store.gets.Load(), "the announced value came with its announcement: no store read")

	set, err := b.Set(ctx, "counter/3", 42)
	require.NoError(t, err)
	require.Eventually(t, func() bool { v, ok := a.Peek("counter/3"); return ok && v == set.Version }, bound, time.Millisecond, "a holds b's set")
	runs := f.counter("counter").Load()

	require.NoError(t, a.Invalidate(ctx, "counter/3"))
	require.Eventually(t, func() bool { _, ok := b.Peek("counter/3"); return !ok }, bound, time.Millisecond, "b dropped its copy")
	r, err = b.Get(ctx, "counter/3")
	require.NoError(t, err)
	assert.Greater(t, r.Version, set.Version)
	assert.Equal(t, runs+1, f.counter("counter").Load(), "the invalidated key was recomputed once")
}

// A value above BusInlineBytes is announced without it: the other gateway
// drops its copy and reads the store. A key it does not hold but a
// subscriber watches takes the inline value; a key nobody there holds or
// watches is not filled (its tier holds what it serves).
func TestBusInlineLimitAndWatchers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "blob", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (string, error) {
		return strings.Repeat("x", int(n)), nil
	})})
	gws := busGateways(t, f, natstest.Start(t), 2, func(o *cache.Options) { o.BusInlineBytes = 100 })
	a, b := gws[0], gws[1]
	ctx := context.Background()

	_, err := b.Get(ctx, "blob/500")
	require.NoError(t, err)
	big, err := a.Refresh(ctx, "blob/500")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := b.Peek("blob/500"); return !ok }, bound, time.Millisecond, "dropped: the value did not travel")
	r, err := b.Get(ctx, "blob/500")
	require.NoError(t, err)
	assert.Equal(t, big.Version, r.Version)
	assert.Equal(t, cache.TierStore, r.Tier)

	w, err := b.Watch("blob/5")
	require.NoError(t, err)
	defer w.Stop()
	small, err := a.Get(ctx, "blob/5")
	require.NoError(t, err)
	select {
	case <-w.C:
	case <-time.After(bound):
		t.Fatal("the watcher was not told")
	}
	assert.Equal(t, small.Version, w.Version())
	v, ok := b.Peek("blob/5")
	assert.True(t, ok, "a watched key takes the inline value")
	assert.Equal(t, small.Version, v)

	_, err = a.Get(ctx, "blob/6")
	require.NoError(t, err)
	_, err = a.Refresh(ctx, "blob/5") // a later announcement: blob/6's came before it
	require.NoError(t, err)
	require.Eventually(t, func() bool { v, ok := b.Peek("blob/5"); return ok && v > small.Version }, bound, time.Millisecond)
	_, ok = b.Peek("blob/6")
	assert.False(t, ok, "an unwatched key b never read is not filled")
}

// The bus goes down: the gateway keeps serving, flagged stale (and Peek
// says no, so no kept response claims otherwise); a change made meanwhile
// elsewhere is not heard of; when the bus is back, the gateway drops its
// tier and serves the newest version from the store.
func TestBusLostThenResumed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	srv := natstest.Listen(t)
	gws := busGateways(t, f, srv, 2)
	a, b := gws[0], gws[1]
	ctx := context.Background()
	first, err := b.Get(ctx, "counter/1")
	require.NoError(t, err)
	_, err = b.Get(ctx, "counter/1")
	require.NoError(t, err)

	srv.Stop()
	require.Eventually(t, func() bool { return !b.BusConnected() && !a.BusConnected() }, bound, time.Millisecond)
	r, err := b.Get(ctx, "counter/1")
	require.NoError(t, err)
	assert.Equal(t, first.Version, r.Version)
	assert.True(t, r.Stale, "served, flagged stale")
	_, ok := b.Peek("counter/1")
	assert.False(t, ok)

	changed, err := a.Refresh(ctx, "counter/1")
	require.NoError(t, err)

	srv.Restart(t)
	require.Eventually(t, func() bool { return b.BusConnected() }, bound, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		r, err := b.Get(ctx, "counter/1")
		return err == nil && r.Version >= changed.Version && !r.Stale
	}, bound, 10*time.Millisecond, "b converged to the version made while it was cut off")
}

// fakeBus is a Bus a test drives by hand: it delivers what the test sends.
type fakeBus struct {
	mu sync.Mutex
	h  cache.BusHandler
}

func (b *fakeBus) Publish(cache.Change) error { return nil }
func (b *fakeBus) Connected() bool            { return true }
func (b *fakeBus) Subscribe(h cache.BusHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.h = h
	return nil
}
func (b *fakeBus) deliver(ch cache.Change) {
	b.mu.Lock()
	h := b.h
	b.mu.Unlock()
	h.Change(ch)
}

// connectingBus connects in Subscribe, as PostgreSQL's LISTEN/NOTIFY bus
// does: down before it, up after.
type connectingBus struct {
	fakeBus
	up atomic.Bool
}

func (b *connectingBus) Connected() bool { return b.up.Load() }
func (b *connectingBus) Subscribe(h cache.BusHandler) error {
	b.up.Store(true)
	return b.fakeBus.Subscribe(h)
}

// A bus that connects in Subscribe is connected once the cache is made:
// its values are not flagged stale (seen: every value of a gateway on the
// PostgreSQL store flagged stale for good, the cache having asked before
// Subscribe and never been told it was up).
func TestBusConnectedInSubscribe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t, func(o *cache.Options) { o.Bus, o.Owner = &connectingBus{}, "me" })
	require.True(t, c.BusConnected())
	ctx := context.Background()
	_, err := c.Get(ctx, "counter/1")
	require.NoError(t, err)
	r, err := c.Get(ctx, "counter/1")
	require.NoError(t, err)
	assert.Equal(t, cache.TierMemory, r.Tier)
	assert.False(t, r.Stale, "a hit is not flagged stale")
	_, ok := c.Peek("counter/1")
	assert.True(t, ok)
}

// An origin's announcements are numbered: a skipped number means one was
// missed, and the gateway drops its tier rather than serve what it may
// have replaced.
func TestBusSequenceGapResyncs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	bus := &fakeBus{}
	c := f.cache(t, func(o *cache.Options) { o.Bus, o.Owner = bus, "me" })
	ctx := context.Background()
	for _, k := range []string{"counter/1", "counter/2"} {
		_, err := c.Get(ctx, k)
		require.NoError(t, err)
	}
	bus.deliver(cache.Change{Key: "other/1", Version: 1, Origin: "peer", Seq: 7}) // a first contact: no gap known
	bus.deliver(cache.Change{Key: "other/1", Version: 2, Origin: "peer", Seq: 8})
	_, ok := c.Peek("counter/1")
	require.True(t, ok, "consecutive numbers: nothing dropped")
	bus.deliver(cache.Change{Key: "other/1", Version: 3, Origin: "peer", Seq: 10})
	_, ok1 := c.Peek("counter/1")
	_, ok2 := c.Peek("counter/2")
	assert.False(t, ok1 || ok2, "number 9 was missed: the tier was dropped")

	_, err := c.Get(ctx, "counter/1")
	require.NoError(t, err)
	bus.deliver(cache.Change{Origin: "peer", Seq: 11, Resync: true})
	_, ok = c.Peek("counter/1")
	assert.False(t, ok, "a peer that could not announce asks everyone to resync")
	bus.deliver(cache.Change{Key: "counter/1", Version: 1 << 62, Origin: "me", Seq: 1})
	_, err = c.Get(ctx, "counter/1")
	require.NoError(t, err)
	_, ok = c.Peek("counter/1")
	assert.True(t, ok, "its own announcements (an echoing bus) are ignored")
}

// A source change is handed to one other gateway, which refreshes the key
// and announces it: one primer run in the cluster per change, none on the
// gateway that handed it out. Changes that come while the key's refresh is
// out fold into one more.
func TestDispatchRefreshesOnceInTheCluster(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	var gate atomic.Bool
	f.register(t, primers.Product{Name: "p", Params: intParam, Primer: primers.PrimerFunc(func(ctx context.Context, k primers.Key) (any, error) {
		if gate.Load() {
			<-release
		}
		return map[string]any{"n": k.Args[0], "at": time.Now().UnixNano()}, nil
	})})
	gws := busGateways(t, f, natstest.Start(t), 3)
	leader := gws[0]
	ctx := context.Background()
	for _, c := range gws {
		_, err := c.Get(ctx, "p/1")
		require.NoError(t, err)
	}
	before := f.counter("p").Load()

	done := make(chan error, 10)
	leader.Dispatch(context.Background(), "p/1", time.Now(), func(err error) { done <- err })
	require.NoError(t, <-done)
	assert.Equal(t, before+1, f.counter("p").Load(), "one run in the cluster")
	want, ok := gws[1].Peek("p/1")
	if !ok {
		want, _ = gws[2].Peek("p/1")
	}
	require.Eventually(t, func() bool {
		for _, c := range gws {
			if v, ok := c.Peek("p/1"); !ok || v < want {
				return false
			}
		}
		return true
	}, bound, time.Millisecond, "every gateway holds the new version")

	gate.Store(true)
	leader.Dispatch(context.Background(), "p/1", time.Now(), func(err error) { done <- err })
	require.Eventually(t, func() bool { return f.counter("p").Load() == before+2 }, bound, time.Millisecond, "the assignment is running")
	for range 5 {
		leader.Dispatch(context.Background(), "p/1", time.Now(), func(err error) { done <- err })
	}
	close(release)
	for range 6 {
		require.NoError(t, <-done)
	}
	assert.Equal(t, before+3, f.counter("p").Load(), "five changes during a run fold into one more run")
}

// Alone on the bus, a gateway refreshes what it hands out itself.
func TestDispatchAloneRefreshesHere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "p", Params: intParam, Primer: squarePrimer()})
	c := busGateways(t, f, natstest.Start(t), 1)[0]
	ctx := context.Background()
	first, err := c.Get(ctx, "p/1")
	require.NoError(t, err)
	done := make(chan error, 1)
	c.Dispatch(context.Background(), "p/1", time.Now(), func(err error) { done <- err })
	require.NoError(t, <-done)
	v, ok := c.Peek("p/1")
	require.True(t, ok)
	assert.Greater(t, v, first.Version)
}

// A source change of a key nobody holds (not in any tier, not watched, not
// in the store) computes nothing; a subscriber of it on another gateway is
// told, and reads it again there.
func TestRefreshChangedSkipsKeysNobodyHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var exists atomic.Bool
	f.register(t, primers.Product{Name: "p", Params: intParam, Primer: primers.PrimerFunc(func(context.Context, primers.Key) (any, error) {
		if !exists.Load() {
			return nil, primers.ErrNoData
		}
		return "here", nil
	})})
	gws := busGateways(t, f, natstest.Start(t), 2)
	a, b := gws[0], gws[1]
	ctx := context.Background()

	done := make(chan error, 1)
	a.RefreshChanged(context.Background(), "p/1", time.Now(), func(err error) { done <- err })
	require.NoError(t, <-done)
	assert.Zero(t, f.counter("p").Load(), "not computed")

	_, err := b.Get(ctx, "p/2")
	require.True(t, errors.Is(err, primers.ErrNoData), "%v", err)
	w, err := b.Watch("p/2")
	require.NoError(t, err)
	defer w.Stop()
	exists.Store(true)
	runs := f.counter("p").Load()
	a.RefreshChanged(context.Background(), "p/2", time.Now(), func(err error) { done <- err })
	require.NoError(t, <-done)
	assert.Equal(t, runs, f.counter("p").Load(), "a did not compute it")
	select {
	case <-w.C:
	case <-time.After(bound):
		t.Fatal("b's watcher was not told")
	}
	r, err := b.Get(ctx, "p/2")
	require.NoError(t, err, "b forgot its negative answer and computed the key")
	assert.JSONEq(t, `"here"`, string(r.Value))
}

// orderBus records the sequence numbers of what a cache publishes, in the
// order they reach it (the order they go on the wire).
type orderBus struct {
	fakeBus
	mu   sync.Mutex
	seqs []uint64
}

func (b *orderBus) Publish(ch cache.Change) error {
	_ = ch.AppendBinary(nil) // as the NATS bus encodes, before it writes
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seqs = append(b.seqs, ch.Seq)
	return nil
}

// A gateway's announcements reach the bus in the order of their numbers,
// however many goroutines store at once: the others take a number out of
// order for a missed announcement and drop their whole tier.
func TestBusAnnouncesInSequenceOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	bus := &orderBus{}
	c := f.cache(t, func(o *cache.Options) { o.Bus, o.Owner = bus, "me" })
	ctx := context.Background()
	const writers, sets = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range sets {
				_, err := c.Set(ctx, fmt.Sprintf("counter/%d", w*sets+i), i)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	bus.mu.Lock()
	defer bus.mu.Unlock()
	require.Len(t, bus.seqs, writers*sets)
	for i, s := range bus.seqs {
		if s != uint64(i+1) {
			t.Fatalf("announcement %d reached the bus with number %d: out of order (%v ...)", i+1, s, bus.seqs[max(0, i-3):min(len(bus.seqs), i+4)])
		}
	}
}
