package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// gate holds a primer run after it has read its source, until released:
// the window in which the source changes under a run already under way.
type gate struct {
	closed  atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
	g.closed.Store(true)
	return g
}

func (g *gate) pass() {
	if g.closed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
}

// open lets the held run and every later one through.
func (g *gate) open() {
	g.closed.Store(false)
	close(g.release)
}

// sourced registers src/n, whose value is the returned source (1 at
// first) times n, read and then held at the returned gate while it is
// closed (it starts closed).
func sourced(t *testing.T, f *fixture) (*atomic.Int64, *gate) {
	source, g := new(atomic.Int64), newGate()
	source.Store(1)
	f.register(t, primers.Product{Name: "src", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
		v := source.Load() * n
		g.pass()
		return v, nil
	})})
	return source, g
}

func refreshAsync(c *cache.Cache, key string) <-chan cache.Result {
	out := make(chan cache.Result, 1)
	go func() {
		r, err := c.Refresh(context.Background(), key)
		if err != nil {
			r.Entry = &cache.Entry{Value: []byte(err.Error())}
		}
		out <- r
	}()
	return out
}

// A refresh asked while another refresh of the key runs is not answered by
// that run, which may have read what changed: it runs again after it, once
// for everyone who asked meanwhile. (CI saw a row change never reach a
// product: its refresh had joined one that started before the change.)
func TestRefreshAskedDuringARunRunsAgainAfterIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	source, g := sourced(t, f)
	g.closed.Store(false)
	c := f.cache(t)
	r, err := c.Get(context.Background(), "src/3")
	require.NoError(t, err)
	require.Equal(t, "3", string(r.Value))

	g.closed.Store(true)
	first := refreshAsync(c, "src/3")
	<-g.entered // the first refresh has read the source
	source.Store(2)
	second, third := refreshAsync(c, "src/3"), refreshAsync(c, "src/3")
	require.Eventually(t, func() bool { return c.RefreshQueued("src/3") }, time.Minute, time.Millisecond)
	g.open()

	require.Equal(t, "3", string((<-first).Value), "the first refresh read the source before it changed")
	require.Equal(t, "6", string((<-second).Value), "asked after the change: it sees it")
	require.Equal(t, "6", string((<-third).Value))
	require.EqualValues(t, 3, f.counter("src").Load(), "the read, the first refresh, and one run for the two asked meanwhile")
	r, err = c.Get(context.Background(), "src/3")
	require.NoError(t, err)
	require.Equal(t, "6", string(r.Value))
}

// A dependency that changes while its dependent is being refreshed in the
// background (by an earlier cascade) refreshes the dependent again: the run
// under way read the old value.
func TestCascadeDuringADependentsRefreshRunsItAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var base atomic.Int64
	base.Store(10)
	g := newGate()
	g.closed.Store(false)
	f.register(t, primers.Product{Name: "base", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
		return base.Load() * n, nil
	})})
	f.register(t, primers.Product{Name: "derived", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var b int64
		if err := primers.Read(ctx, fmt.Sprintf("base/%d", n), &b); err != nil {
			return 0, err
		}
		g.pass()
		return b + 1, nil
	})})
	c := f.cache(t)
	ctx := context.Background()
	get := func(key string) string {
		r, err := c.Get(ctx, key)
		require.NoError(t, err)
		return string(r.Value)
	}
	require.Equal(t, "21", get("derived/2"))

	// A change of base cascades to derived, which reads it and is held.
	g.closed.Store(true)
	base.Store(30)
	_, err := c.Refresh(ctx, "base/2")
	require.NoError(t, err)
	<-g.entered
	// base changes again while that refresh of derived is under way.
	base.Store(100)
	_, err = c.Refresh(ctx, "base/2")
	require.NoError(t, err)
	require.Equal(t, "200", get("base/2"))
	require.Eventually(t, func() bool { return c.RefreshQueued("derived/2") }, time.Minute, time.Millisecond,
		"the second change must queue another refresh of derived, not count on the one under way")
	g.open()
	require.Eventually(t, func() bool { return get("derived/2") == "201" }, time.Minute, time.Millisecond)
}

// acquireCounter counts leases refused, to know when a gateway waits on
// another's lease.
type acquireCounter struct {
	cache.Store
	refused atomic.Int64
}

func (s *acquireCounter) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	got, err := s.Store.Acquire(ctx, lease, owner, ttl)
	if err == nil && !got {
		s.refused.Add(1)
	}
	return got, err
}

// leaseRace: gateway a refreshes src/5 and is held having read the source
// (1); then between runs, gateway b refreshes src/5 and waits on a's
// lease, and a goes on. It returns a's and b's results.
func leaseRace(t *testing.T, f *fixture, between func(source *atomic.Int64)) (cache.Result, cache.Result) {
	source, g := sourced(t, f)
	a := f.cache(t)
	waits := &acquireCounter{Store: f.store}
	b := f.cache(t, func(o *cache.Options) { o.Store = waits })
	first := refreshAsync(a, "src/5")
	<-g.entered
	between(source)
	second := refreshAsync(b, "src/5")
	require.Eventually(t, func() bool { return waits.refused.Load() > 0 }, time.Minute, time.Millisecond, "b waits on a's lease")
	g.open()
	return <-first, <-second
}

// A refresh that waits out another gateway's lease does not take the value
// that gateway stores if its run began before the refresh was asked: that
// run may have read what the change replaced. It computes again.
func TestRefreshTakesNoValueComputedBeforeItWasAsked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, second := leaseRace(t, f, func(source *atomic.Int64) {
		f.clock.Advance(time.Second)
		source.Store(2)
	})
	require.Equal(t, "5", string(first.Value))
	require.Equal(t, "10", string(second.Value), "b computed again rather than take a's value from before it asked")
	require.Equal(t, cache.TierComputed, second.Tier)
	require.EqualValues(t, 2, f.counter("src").Load())
}

// Two gateways that see one change at once (both asked before either
// started) share one primer run: the second waits out the lease and takes
// the first's value.
func TestGatewaysAskedAtOnceShareOneRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The fixture's clock stands still: both ask at the same instant.
	first, second := leaseRace(t, f, func(*atomic.Int64) {})
	require.Equal(t, "5", string(first.Value))
	require.Equal(t, "5", string(second.Value))
	require.Equal(t, cache.TierStore, second.Tier, "b took a's value")
	require.EqualValues(t, 1, f.counter("src").Load())
}

// A refresh asked earlier (the scheduler asks as of when its slot opens) is
// answered by a run under way that started after it was asked.
func TestRefreshAskedAtJoinsARunStartedSince(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, g := sourced(t, f)
	c := f.cache(t)
	slot := f.clock.Now()
	f.clock.Advance(time.Second)

	first := refreshAsync(c, "src/2") // starts after the slot
	<-g.entered
	second := make(chan cache.Result, 1)
	go func() {
		r, err := c.RefreshAskedAt(context.Background(), "src/2", slot)
		assert.NoError(t, err)
		second <- r
	}()
	require.Eventually(t, func() bool { return c.RefreshCallers("src/2") == 2 }, time.Minute, time.Millisecond,
		"the second caller shares the run under way")
	require.False(t, c.RefreshQueued("src/2"))
	g.open()
	require.Equal(t, "2", string((<-first).Value))
	require.Equal(t, "2", string((<-second).Value))
	require.EqualValues(t, 1, f.counter("src").Load())
}

// putFailingStore refuses writes while fail is set, as a store that is
// down does.
type putFailingStore struct {
	cache.Store
	fail atomic.Bool
}

func (s *putFailingStore) Put(ctx context.Context, e cache.Entry) error {
	if s.fail.Load() {
		return errors.New("store down")
	}
	return s.Store.Put(ctx, e)
}

// A source-changed key refreshed while the store refuses writes is served
// here at its new version, and RefreshChanged says it was not stored (the
// follower then asks again rather than count the change done, or the
// store would keep the old value); once the store takes writes again the
// same call succeeds and the store holds the new value.
func TestRefreshChangedReportsNotStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "counter", Params: intParam, Primer: squarePrimer()})
	store := &putFailingStore{Store: f.store}
	c := f.cache(t, func(o *cache.Options) { o.Store = store })
	ctx := context.Background()
	first, err := c.Get(ctx, "counter/1")
	require.NoError(t, err)
	refresh := func() error {
		done := make(chan error, 1)
		c.RefreshChanged(context.Background(), "counter/1", f.clock.Now(), func(err error) { done <- err })
		return <-done
	}

	store.fail.Store(true)
	require.ErrorIs(t, refresh(), cache.ErrNotStored)
	r, err := c.Get(ctx, "counter/1")
	require.NoError(t, err)
	assert.Greater(t, r.Version, first.Version, "the new value is served here")
	stored, err := f.store.Get(ctx, "counter/1")
	require.NoError(t, err)
	assert.Equal(t, first.Version, stored.Version, "the store kept the old value")

	store.fail.Store(false)
	require.NoError(t, refresh())
	r, err = c.Get(ctx, "counter/1")
	require.NoError(t, err)
	stored, err = f.store.Get(ctx, "counter/1")
	require.NoError(t, err)
	assert.Equal(t, r.Version, stored.Version, "stored once the store takes writes")
}
