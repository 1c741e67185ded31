package cache_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/logtest"
	"github.com/kck-go/kck/primers"
)

func absentPrimer() primers.Primer {
	return primers.Func1(func(_ context.Context, n int64) (int64, error) {
		if n < 0 {
			return 0, fmt.Errorf("%w: negative", primers.ErrBadInput)
		}
		return 0, fmt.Errorf("%w: nothing for %d", primers.ErrNoData, n)
	})
}

func TestNegativeCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "absent", Params: intParam, Primer: absentPrimer()})
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	ctx := context.Background()
	runs := f.counter("absent")

	for range 3 {
		_, err := c.Get(ctx, "absent/1")
		require.ErrorIs(t, err, primers.ErrNoData)
		_, err = c.Get(ctx, "absent/-1")
		require.ErrorIs(t, err, primers.ErrBadInput)
	}
	require.EqualValues(t, 2, runs.Load())

	// Other failures are not remembered.
	f.fail.Store(true)
	for range 2 {
		_, err := c.Get(ctx, "square/3")
		require.Error(t, err)
	}
	require.EqualValues(t, 2, f.counter("square").Load())
	f.fail.Store(false)

	f.clock.Advance(5 * time.Second)
	_, err := c.Get(ctx, "absent/1")
	require.ErrorIs(t, err, primers.ErrNoData)
	require.EqualValues(t, 3, runs.Load(), "remembered past NegativeTTL")

	// Invalidate and Set end it at once.
	require.NoError(t, c.Invalidate(ctx, "absent/1"))
	_, err = c.Get(ctx, "absent/1")
	require.ErrorIs(t, err, primers.ErrNoData)
	require.EqualValues(t, 4, runs.Load())
	_, err = c.Set(ctx, "absent/1", 5)
	require.NoError(t, err)
	r, err := c.Get(ctx, "absent/1")
	require.NoError(t, err)
	require.JSONEq(t, "5", string(r.Value))

	// Off: every miss runs the primer.
	f2 := newFixture(t)
	f2.register(t, primers.Product{Name: "absent", Params: intParam, Primer: absentPrimer()})
	c2 := f2.cache(t, func(o *cache.Options) { o.NegativeTTL = -1 })
	for range 3 {
		_, err := c2.Get(ctx, "absent/1")
		require.ErrorIs(t, err, primers.ErrNoData)
	}
	require.EqualValues(t, 3, f2.counter("absent").Load())
}

// The negative cache is bounded by bytes: many absent keys do not keep
// more than NegativeCacheBytes.
func TestNegativeCacheBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "absent", Params: intParam, Primer: absentPrimer()})
	c := f.cache(t, func(o *cache.Options) { o.NegativeCacheBytes = 16 << 10 })
	ctx := context.Background()
	for i := range 2000 {
		_, _ = c.Get(ctx, fmt.Sprintf("absent/%d", i))
	}
	// Asking the first keys again runs their primers: they were evicted.
	before := f.counter("absent").Load()
	for i := range 50 {
		_, _ = c.Get(ctx, fmt.Sprintf("absent/%d", i))
	}
	require.Greater(t, f.counter("absent").Load(), before)
}

func TestMissBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	f.register(t, primers.Product{Name: "sum", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		// Reads made by a primer do not spend the caller's budget.
		var total int64
		for i := range n {
			var v map[string]int64
			if err := primers.Read(ctx, fmt.Sprintf("square/%d", 100+i), &v); err != nil {
				return 0, err
			}
			total += v["square"]
		}
		return total, nil
	})})
	c := f.cache(t)
	ctx := context.Background()

	// Warm one key into the store only (another gateway computed it).
	other := f.cache(t)
	_, err := other.Get(ctx, "square/9")
	require.NoError(t, err)

	rctx := cache.WithMissBudget(ctx, 2)
	_, err = c.Get(rctx, "square/1")
	require.NoError(t, err)
	_, err = c.Get(rctx, "square/1") // a memory hit is free
	require.NoError(t, err)
	r, err := c.Get(rctx, "square/9") // so is a store hit
	require.NoError(t, err)
	require.Equal(t, cache.TierStore, r.Tier)
	_, err = c.Get(rctx, "sum/5") // one miss, however many reads its primer makes
	require.NoError(t, err)
	runs := f.counter("square").Load()
	_, err = c.Get(rctx, "square/2")
	require.ErrorIs(t, err, cache.ErrTooManyMisses)
	require.Equal(t, runs, f.counter("square").Load(), "a primer ran past the budget")
	_, err = c.Refresh(rctx, "square/1")
	require.ErrorIs(t, err, cache.ErrTooManyMisses)

	// A spent budget still serves what is stored.
	_, err = other.Get(ctx, "square/10")
	require.NoError(t, err)
	r, err = c.Get(rctx, "square/10")
	require.NoError(t, err)
	require.Equal(t, cache.TierStore, r.Tier)

	// A new request has its own budget; none means no bound.
	_, err = c.Get(cache.WithMissBudget(ctx, 2), "square/2")
	require.NoError(t, err)
	for i := range 30 {
		_, err = c.Get(ctx, fmt.Sprintf("square/%d", 200+i))
		require.NoError(t, err)
	}
}

// "primer failed" is logged once per product per PrimerLogInterval.
func TestPrimerFailureLogThrottled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	logs := &logtest.Capture{}
	c := f.cache(t, func(o *cache.Options) { o.Logger = slog.New(logs) })
	ctx := context.Background()
	f.fail.Store(true)
	for i := range 100 {
		_, _ = c.Get(ctx, fmt.Sprintf("square/%d", i))
	}
	require.EqualValues(t, 100, f.counter("square").Load())
	require.Equal(t, 1, logs.Count("primer failed"))
	f.clock.Advance(10 * time.Second)
	_, _ = c.Get(ctx, "square/1000")
	require.Equal(t, 2, logs.Count("primer failed"))
	require.Equal(t, 1, logs.Count("not_logged_since_last=99"))
}

// A key read by many fields of one request is charged once, whether the
// reads join one flight or come one after another.
func TestMissBudgetChargesAKeyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "absent", Params: intParam, Primer: absentPrimer()})
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t, func(o *cache.Options) { o.NegativeTTL = -1 })
	rctx := cache.WithMissBudget(context.Background(), 2)
	var wg sync.WaitGroup
	errs := make([]error, 30)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Get(rctx, "absent/5")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, primers.ErrNoData)
	}
	_, err := c.Get(rctx, "square/1")
	require.NoError(t, err, "the 30 reads of one key spent more than one miss")
	_, err = c.Get(rctx, "square/2")
	require.ErrorIs(t, err, cache.ErrTooManyMisses)
}
