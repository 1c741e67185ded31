package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/primers"
)

// countingStore counts calls into a real store, to prove which tier served.
type countingStore struct {
	cache.Store
	gets, puts atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (cache.Entry, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, key)
}

func (s *countingStore) Put(ctx context.Context, e cache.Entry) error {
	s.puts.Add(1)
	return s.Store.Put(ctx, e)
}

type fixture struct {
	reg   *primers.Registry
	store *countingStore
	clock *cachetest.Clock
	runs  sync.Map // product name -> *atomic.Int64
	fail  atomic.Bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := memory.New() // the contract's store, in memory: the fast tier's
	t.Cleanup(func() { _ = s.Close() })
	return &fixture{
		reg:   primers.NewRegistry(),
		store: &countingStore{Store: s},
		clock: cachetest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)),
	}
}

func (f *fixture) counter(name string) *atomic.Int64 {
	c, _ := f.runs.LoadOrStore(name, new(atomic.Int64))
	return c.(*atomic.Int64)
}

func (f *fixture) register(t *testing.T, p primers.Product) {
	t.Helper()
	inner := p.Primer
	if inner != nil {
		p.Primer = primers.PrimerFunc(func(ctx context.Context, k primers.Key) (any, error) {
			f.counter(p.Name).Add(1)
			if f.fail.Load() {
				return nil, errors.New("source is down")
			}
			return inner.Prime(ctx, k)
		})
	}
	require.NoError(t, f.reg.Register(p))
}

func (f *fixture) cache(t *testing.T, opts ...func(*cache.Options)) *cache.Cache {
	t.Helper()
	o := cache.Options{Registry: f.reg, Store: f.store, Clock: f.clock, PollInterval: time.Millisecond}
	for _, fn := range opts {
		fn(&o)
	}
	c, err := cache.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func squarePrimer() primers.Primer {
	return primers.Func1(func(_ context.Context, n int64) (map[string]int64, error) {
		return map[string]int64{"n": n, "square": n * n}, nil
	})
}

var intParam = []primers.Param{{Name: "n", Kind: primers.Int}}

func TestGetComputesThenServesFromMemory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	ctx := context.Background()

	r, err := c.Get(ctx, "square/12")
	require.NoError(t, err)
	require.JSONEq(t, `{"n":12,"square":144}`, string(r.Value))
	require.Equal(t, cache.TierComputed, r.Tier)
	require.NotZero(t, r.Version)
	require.False(t, r.Stale)

	gets, puts := f.store.gets.Load(), f.store.puts.Load()
	for range 100 {
		r2, err := c.Get(ctx, "square/12")
		require.NoError(t, err)
		require.Equal(t, cache.TierMemory, r2.Tier)
		require.Equal(t, r.Version, r2.Version)
	}
	require.Equal(t, gets, f.store.gets.Load(), "a memory hit must not read the store")
	require.Equal(t, puts, f.store.puts.Load())
	require.Equal(t, int64(1), f.counter("square").Load())

	// A non-canonical spelling of the same key is the same instance.
	r3, err := c.Get(ctx, "square/012")
	require.NoError(t, err)
	require.Equal(t, "square/12", r3.Key)
	require.Equal(t, r.Version, r3.Version)
}

func TestStoreHitFillsMemory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	ctx := context.Background()
	first, err := f.cache(t).Get(ctx, "square/3")
	require.NoError(t, err)

	// A second gateway over the same store finds it there.
	c2 := f.cache(t)
	r, err := c2.Get(ctx, "square/3")
	require.NoError(t, err)
	require.Equal(t, cache.TierStore, r.Tier)
	require.Equal(t, first.Version, r.Version)
	r, err = c2.Get(ctx, "square/3")
	require.NoError(t, err)
	require.Equal(t, cache.TierMemory, r.Tier)
	require.Equal(t, int64(1), f.counter("square").Load())
}

func TestStampedeComputesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	f.register(t, primers.Product{Name: "slow", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
		<-release
		return n, nil
	})})
	// Two gateways over one store: the lease makes it once across both.
	caches := []*cache.Cache{f.cache(t), f.cache(t)}
	const callers = 1000
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(callers)
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			started.Done()
			r, err := caches[i%2].Get(context.Background(), "slow/7")
			if err == nil && string(r.Value) != "7" {
				err = fmt.Errorf("got %s", r.Value)
			}
			errs <- err
		})
	}
	started.Wait()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), f.counter("slow").Load(), "1,000 concurrent misses must run the primer once")
}

// missThenHook is a store whose first Get of a key misses and, before it
// returns, runs hook: the window in which another gateway computes the key,
// stores it and releases its lease.
type missThenHook struct {
	cache.Store
	once sync.Once
	hook func()
}

func (s *missThenHook) Get(ctx context.Context, key string) (cache.Entry, error) {
	e, err := s.Store.Get(ctx, key)
	s.once.Do(func() {
		s.hook()
		e, err = cache.Entry{}, cache.ErrNotFound
	})
	return e, err
}

// A gateway that missed in the store just before another gateway stored the
// value and released the lease takes that value instead of computing again:
// the store is read again under the lease (found on Cassandra, where the
// window is milliseconds wide).
func TestMissAfterAnotherGatewayStoredIsNotComputedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	a := f.cache(t)
	late := &missThenHook{Store: f.store}
	late.hook = func() {
		_, err := a.Get(context.Background(), "square/4")
		require.NoError(t, err)
	}
	b := f.cache(t, func(o *cache.Options) { o.Store = late })
	r, err := b.Get(context.Background(), "square/4")
	require.NoError(t, err)
	require.Equal(t, cache.TierStore, r.Tier)
	require.EqualValues(t, 1, f.counter("square").Load(), "computed once, by the first gateway")

	// A refresh still recomputes whatever is stored.
	_, err = b.Refresh(context.Background(), "square/4")
	require.NoError(t, err)
	require.EqualValues(t, 2, f.counter("square").Load())
}

func TestSoftExpiryServesStaleAndRefreshes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), SoftTTL: time.Minute, TTL: time.Hour})
	c := f.cache(t)
	ctx := context.Background()
	first, err := c.Get(ctx, "square/2")
	require.NoError(t, err)
	require.Equal(t, first.ComputedAt.Add(time.Minute), first.StaleAt)
	require.Equal(t, first.ComputedAt.Add(time.Hour), first.ExpiresAt)

	f.clock.Advance(2 * time.Minute)
	r, err := c.Get(ctx, "square/2")
	require.NoError(t, err)
	require.True(t, r.Stale, "past the soft TTL the value is served flagged stale")
	require.Equal(t, first.Version, r.Version)

	require.Eventually(t, func() bool {
		r, err := c.Get(ctx, "square/2")
		return err == nil && !r.Stale && r.Version > first.Version
	}, 2*time.Minute, time.Millisecond, "the background refresh replaces the stale value")
	require.Equal(t, int64(2), f.counter("square").Load())
}

func TestPrimerFailureServesStale(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), SoftTTL: time.Minute})
	c := f.cache(t)
	ctx := context.Background()
	first, err := c.Get(ctx, "square/4")
	require.NoError(t, err)

	f.fail.Store(true)
	f.clock.Advance(2 * time.Minute)
	for range 3 {
		r, err := c.Get(ctx, "square/4")
		require.NoError(t, err)
		require.True(t, r.Stale)
		require.Equal(t, first.Version, r.Version)
	}
	// The failed background refresh left the stale value in place.
	require.Eventually(t, func() bool { return f.counter("square").Load() >= 2 }, 2*time.Minute, time.Millisecond)
	r, err := c.Get(ctx, "square/4")
	require.NoError(t, err)
	require.True(t, r.Stale)

	// An explicit refresh reports the failure and keeps the old value.
	_, err = c.Refresh(ctx, "square/4")
	var pe *cache.PrimerError
	require.ErrorAs(t, err, &pe)
	r, err = c.Get(ctx, "square/4")
	require.NoError(t, err)
	require.Equal(t, first.Version, r.Version)
}

func TestPrimerFailureWithoutStaleIsAnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	f.fail.Store(true)
	_, err := c.Get(context.Background(), "square/5")
	var pe *cache.PrimerError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "square", pe.Product)
	require.Equal(t, "square/5", pe.Key)
	require.ErrorContains(t, err, "source is down")
	// Failures are not cached: the next read tries again.
	f.fail.Store(false)
	r, err := c.Get(context.Background(), "square/5")
	require.NoError(t, err)
	require.JSONEq(t, `{"n":5,"square":25}`, string(r.Value))
}

func TestPrimerPanicIsRecovered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "boom", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
		var xs []int64
		return xs[n], nil // index out of range: panics
	})})
	c := f.cache(t)
	_, err := c.Get(context.Background(), "boom/1")
	var pe *cache.PrimerError
	require.ErrorAs(t, err, &pe)
	require.ErrorContains(t, err, "panicked")
}

func TestEmptyResultIsAnErrorUnlessAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	empty := primers.Func1(func(context.Context, int64) ([]int, error) { return []int{}, nil })
	f.register(t, primers.Product{Name: "none", Params: intParam, Primer: empty})
	f.register(t, primers.Product{Name: "maybe", Params: intParam, Primer: empty, AllowEmpty: true})
	c := f.cache(t)
	_, err := c.Get(context.Background(), "none/1")
	require.ErrorContains(t, err, "primer returned no results")
	r, err := c.Get(context.Background(), "maybe/1")
	require.NoError(t, err)
	require.Equal(t, "[]", string(r.Value))
}

func TestHardExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), TTL: time.Minute})
	c := f.cache(t)
	ctx := context.Background()
	first, err := c.Get(ctx, "square/6")
	require.NoError(t, err)
	f.clock.Advance(time.Minute)
	r, err := c.Get(ctx, "square/6")
	require.NoError(t, err)
	require.Equal(t, cache.TierComputed, r.Tier, "past the hard TTL the value is gone and recomputed")
	require.Greater(t, r.Version, first.Version)
	require.Equal(t, int64(2), f.counter("square").Load())
}

// GetKey reads a key the registry built as Get reads its string, from every
// tier; a key made by hand is read as its string is, parse errors included.
func TestGetKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	ctx := context.Background()
	k, err := f.reg.Key("square", 12)
	require.NoError(t, err)
	r, err := f.cache(t).GetKey(ctx, k)
	require.NoError(t, err)
	require.Equal(t, cache.TierComputed, r.Tier)
	require.Equal(t, "square/12", r.Key)
	require.JSONEq(t, `{"n":12,"square":144}`, string(r.Value))

	c2 := f.cache(t) // another gateway: from the store, then from memory
	for _, tier := range []cache.Tier{cache.TierStore, cache.TierMemory} {
		got, err := c2.GetKey(ctx, k)
		require.NoError(t, err)
		require.Equal(t, tier, got.Tier)
		require.Equal(t, r.Version, got.Version)
	}
	require.Equal(t, int64(1), f.counter("square").Load())

	// By hand: a string argument of an int product is refused, not given to
	// the primer; a key of a product that is not registered is a Set value.
	_, err = c2.GetKey(ctx, primers.Key{Name: "square", Args: []any{"abc"}})
	require.ErrorIs(t, err, primers.ErrBadParams)
	_, err = c2.GetKey(ctx, primers.Key{Name: "square", Args: []any{int64(5), int64(6)}})
	require.ErrorIs(t, err, primers.ErrBadParams)
	_, err = c2.Set(ctx, "greeting/en", "hello")
	require.NoError(t, err)
	got, err := c2.GetKey(ctx, primers.Key{Name: "greeting", Args: []any{"en"}})
	require.NoError(t, err)
	require.Equal(t, `"hello"`, string(got.Value))
	require.False(t, primers.Key{Name: "square", Args: []any{int64(5)}}.Checked())
	require.True(t, k.Checked())
}

func TestKeyErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	f.register(t, primers.Product{Name: "manual", Params: intParam})
	c := f.cache(t)
	ctx := context.Background()
	for _, tc := range []struct {
		key  string
		want error
	}{
		{"", primers.ErrMalformedKey},
		{"9bad/1", primers.ErrMalformedKey},
		{"square/%zz", primers.ErrMalformedKey},
		{"nope/1", primers.ErrUnknownProduct},
		{"square", primers.ErrBadParams},
		{"square/1/2", primers.ErrBadParams},
		{"square/abc", primers.ErrBadParams},
		{"manual/1", cache.ErrNotSet},
	} {
		_, err := c.Get(ctx, tc.key)
		require.ErrorIs(t, err, tc.want, "key %q", tc.key)
	}
}

func TestSetWithoutPrimer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "manual", Params: intParam})
	c := f.cache(t)
	ctx := context.Background()
	// A key with no registered product at all (KCK allowed plain values).
	r, err := c.Set(ctx, "greeting/en", map[string]string{"text": "hello"})
	require.NoError(t, err)
	got, err := c.Get(ctx, "greeting/en")
	require.NoError(t, err)
	require.Equal(t, r.Version, got.Version)
	require.JSONEq(t, `{"text":"hello"}`, string(got.Value))
	// A registered product without a primer serves what was set.
	_, err = c.Set(ctx, "manual/1", []int{1, 2})
	require.NoError(t, err)
	got, err = f.cache(t).Get(ctx, "manual/1") // another gateway: from the store
	require.NoError(t, err)
	require.Equal(t, "[1,2]", string(got.Value))
}

func TestCompareAndSet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.cache(t)
	ctx := context.Background()
	r1, err := c.CompareAndSet(ctx, "counter/a", 1, 0)
	require.NoError(t, err, "expected version 0 means absent")
	_, err = c.CompareAndSet(ctx, "counter/a", 2, 0)
	require.ErrorIs(t, err, cache.ErrVersionMismatch)
	r2, err := c.CompareAndSet(ctx, "counter/a", 2, r1.Version)
	require.NoError(t, err)
	require.Greater(t, r2.Version, r1.Version)
	_, err = c.CompareAndSet(ctx, "counter/a", 3, r1.Version)
	require.ErrorIs(t, err, cache.ErrVersionMismatch)
	got, err := f.cache(t).Get(ctx, "counter/a")
	require.NoError(t, err)
	require.Equal(t, "2", string(got.Value), "a failed compare-and-set leaves the old value")

	// Racing writers with the same expected version: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := f.cache(t).CompareAndSet(ctx, "counter/a", 10+i, r2.Version); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load())
}

func TestInvalidateAndRefresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	ctx := context.Background()
	first, err := c.Get(ctx, "square/8")
	require.NoError(t, err)

	refreshed, err := c.Refresh(ctx, "square/8")
	require.NoError(t, err)
	require.Greater(t, refreshed.Version, first.Version)
	require.Equal(t, int64(2), f.counter("square").Load())

	require.NoError(t, c.Invalidate(ctx, "square/8"))
	_, err = f.store.Store.Get(ctx, "square/8")
	require.ErrorIs(t, err, cache.ErrNotFound)
	again, err := c.Get(ctx, "square/8")
	require.NoError(t, err)
	require.Equal(t, cache.TierComputed, again.Tier)
	require.Greater(t, again.Version, refreshed.Version)
	require.Equal(t, int64(3), f.counter("square").Load())
}

func TestVersionsMonotonic(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // the fake clock never moves: versions must still rise
	c := f.cache(t)
	ctx := context.Background()
	var last uint64
	for i := range 50 {
		r, err := c.Set(ctx, "v/1", i)
		require.NoError(t, err)
		require.Greater(t, r.Version, last)
		last = r.Version
	}
}

func TestGetManyInOrderWithPerItemErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	res := c.GetMany(context.Background(), []string{"square/1", "nope/1", "square/2", "square/x", "square/1"})
	require.Len(t, res, 5)
	require.NoError(t, res[0].Err)
	require.JSONEq(t, `{"n":1,"square":1}`, string(res[0].Value))
	require.ErrorIs(t, res[1].Err, primers.ErrUnknownProduct)
	require.NoError(t, res[2].Err)
	require.JSONEq(t, `{"n":2,"square":4}`, string(res[2].Value))
	require.ErrorIs(t, res[3].Err, primers.ErrBadParams)
	require.NoError(t, res[4].Err)
}

func TestDependenciesCascadeAndCycles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := atomic.Int64{}
	base.Store(10)
	f.register(t, primers.Product{Name: "base", Params: intParam, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
		return base.Load() * n, nil
	})})
	f.register(t, primers.Product{Name: "derived", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var b int64
		if err := primers.Read(ctx, fmt.Sprintf("base/%d", n), &b); err != nil {
			return 0, err
		}
		return b + 1, nil
	})})
	f.register(t, primers.Product{Name: "loop_a", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var v int64
		return v, primers.Read(ctx, fmt.Sprintf("loop_b/%d", n), &v)
	})})
	f.register(t, primers.Product{Name: "loop_b", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var v int64
		return v, primers.Read(ctx, fmt.Sprintf("loop_a/%d", n), &v)
	})})
	c := f.cache(t)
	ctx := context.Background()

	r, err := c.Get(ctx, "derived/2")
	require.NoError(t, err)
	require.Equal(t, "21", string(r.Value))
	require.Equal(t, []string{"derived/2"}, c.Dependents("base/2"))

	// Changing the base refreshes the derived product after it.
	base.Store(100)
	_, err = c.Refresh(ctx, "base/2")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := c.Get(ctx, "derived/2")
		return err == nil && string(r.Value) == "201"
	}, 2*time.Minute, time.Millisecond)

	_, err = c.Get(ctx, "loop_a/1")
	require.ErrorIs(t, err, cache.ErrCycle, "a cycle is an error, never a hang")
}

func TestAugment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{
		Name:   "list",
		Params: intParam,
		Primer: primers.Func1(func(context.Context, int64) ([]int, error) { return []int{1, 2}, nil }),
		Augment: func(_ context.Context, _ primers.Key, cur json.RawMessage, change any) (any, error) {
			n, ok := change.(int)
			if !ok {
				return nil, primers.ErrCannotAugment
			}
			var list []int
			if err := json.Unmarshal(cur, &list); err != nil {
				return nil, err
			}
			return append(list, n), nil
		},
	})
	c := f.cache(t)
	ctx := context.Background()
	first, err := c.Get(ctx, "list/1")
	require.NoError(t, err)
	r, err := c.Augment(ctx, "list/1", 3)
	require.NoError(t, err)
	require.Equal(t, "[1,2,3]", string(r.Value))
	require.Greater(t, r.Version, first.Version)
	require.Equal(t, int64(1), f.counter("list").Load(), "augment does not run the primer")
	// A change augment cannot fold in falls back to recomputing.
	r, err = c.Augment(ctx, "list/1", "not an int")
	require.NoError(t, err)
	require.Equal(t, "[1,2]", string(r.Value))
	require.Equal(t, int64(2), f.counter("list").Load())
}

func TestUpdateRefreshesAffected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var rows atomic.Int64
	rows.Store(1)
	f.register(t, primers.Product{Name: "count", Params: intParam, Primer: primers.Func1(func(context.Context, int64) (int64, error) {
		return rows.Load(), nil
	})})
	require.NoError(t, f.reg.RegisterUpdater("add_row", primers.UpdaterFunc(func(_ context.Context, in json.RawMessage) (primers.UpdateResult, error) {
		var body struct{ N int64 }
		if err := json.Unmarshal(in, &body); err != nil || body.N <= 0 {
			return primers.UpdateResult{}, fmt.Errorf("%w: n must be a positive number", primers.ErrBadInput)
		}
		rows.Add(body.N)
		return primers.UpdateResult{Affected: []string{"count/1"}, Result: map[string]int64{"rows": rows.Load()}}, nil
	})))
	c := f.cache(t)
	ctx := context.Background()
	r, err := c.Get(ctx, "count/1")
	require.NoError(t, err)
	require.Equal(t, "1", string(r.Value))

	out, err := c.Update(ctx, "add_row", json.RawMessage(`{"n":2}`))
	require.NoError(t, err)
	require.Len(t, out.Products, 1)
	require.NoError(t, out.Products[0].Err)
	require.Equal(t, "3", string(out.Products[0].Value), "read-your-writes: the fresh product comes back")
	r, err = c.Get(ctx, "count/1")
	require.NoError(t, err)
	require.Equal(t, "3", string(r.Value))

	_, err = c.Update(ctx, "add_row", json.RawMessage(`{"n":-1}`))
	require.ErrorIs(t, err, primers.ErrBadInput)
	_, err = c.Update(ctx, "nope", json.RawMessage(`{}`))
	require.ErrorIs(t, err, primers.ErrUnknownUpdater)
}

// New refuses options that cannot work, with the fields and values in the
// error; a zero field takes its default first.
func TestOptionsAreChecked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		o    cache.Options
		want string // "" means New succeeds
	}{
		{"defaults", cache.Options{}, ""},
		{"lease above the primer timeout", cache.Options{LeaseTTL: time.Minute, PrimerTimeout: 30 * time.Second}, ""},
		{"lease alone, below the default timeout", cache.Options{LeaseTTL: 10 * time.Second}, ""},
		{"timeout alone, above the default lease", cache.Options{PrimerTimeout: time.Minute}, ""},
		{"lease equal to the primer timeout (kck serve's defaults)", cache.Options{LeaseTTL: 30 * time.Second, PrimerTimeout: 30 * time.Second}, ""},
		{"lease below the primer timeout", cache.Options{LeaseTTL: time.Second, PrimerTimeout: time.Minute},
			"cache options: LeaseTTL (1s) must be at least PrimerTimeout (1m0s): a primer still running when its lease runs out"},
		{"poll as long as the lease", cache.Options{LeaseTTL: time.Second, PollInterval: time.Second},
			"cache options: PollInterval (1s) must be shorter than LeaseTTL (1s)"},
		{"lease below the default poll", cache.Options{LeaseTTL: 10 * time.Millisecond},
			"PollInterval (20ms) must be shorter than LeaseTTL (10ms)"},
		{"negative", cache.Options{PrimerLogInterval: -time.Second}, "durations and counts must not be negative"},
		{"no registry", cache.Options{Registry: nil}, "Registry is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			o.Store = f.store
			if tc.name != "no registry" {
				o.Registry = f.reg
			}
			c, err := cache.New(o)
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, c.Close())
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// A gateway that died holding a key's compute lease delays the key by what
// is left of the lease, not more: the reader waiting on it gets the value
// once the lease runs out. The primer timeout bounds the run alone; it used
// to bound the wait and the run together, so the wait could use it all up
// and the reader got a PRIMER_FAILED for another gateway's death.
func TestMissWaitsOutADeadGatewaysLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t, func(o *cache.Options) {
		o.LeaseTTL = 5 * time.Second
		o.PrimerTimeout = 300 * time.Millisecond
	})
	ctx := context.Background()
	got, err := f.store.Acquire(ctx, "prime/square/7", "dead-gateway", time.Second)
	require.NoError(t, err)
	require.True(t, got)
	start := time.Now()
	r, err := c.Get(ctx, "square/7")
	require.NoError(t, err, "the reader gets the value once the dead gateway's lease runs out")
	require.JSONEq(t, `{"n":7,"square":49}`, string(r.Value))
	require.GreaterOrEqual(t, time.Since(start), time.Second, "it waited for the lease")
	require.Equal(t, int64(1), f.counter("square").Load())
}

// The primer timeout still bounds one run.
func TestPrimerTimeoutBoundsTheRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "slow", Params: intParam, Primer: primers.PrimerFunc(func(ctx context.Context, _ primers.Key) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})})
	c := f.cache(t, func(o *cache.Options) {
		o.LeaseTTL = 5 * time.Second
		o.PrimerTimeout = 100 * time.Millisecond
	})
	_, err := c.Get(context.Background(), "slow/1")
	var pe *cache.PrimerError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
