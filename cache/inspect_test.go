package cache_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// Reads count per product by tier, a miss's latency is observed per
// product, and refreshes count once per computation.
func TestProductReadMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), SoftTTL: time.Minute})
	reg := prometheus.NewRegistry()
	c := f.cache(t, func(o *cache.Options) { o.Registerer = reg })
	ctx := context.Background()

	_, err := c.Get(ctx, "square/3") // miss
	require.NoError(t, err)
	for range 3 {
		_, err := c.Get(ctx, "square/3") // memory hits
		require.NoError(t, err)
	}
	f.clock.Advance(2 * time.Minute)
	_, err = c.Get(ctx, "square/3") // stale
	require.NoError(t, err)
	_, err = c.Refresh(ctx, "square/4")
	require.NoError(t, err)

	reads := func(outcome string) float64 {
		return testutil.ToFloat64(collectorFor(t, reg, "kck_product_reads_total", "square", outcome))
	}
	require.Equal(t, 1.0, reads("miss"))
	require.Equal(t, 3.0, reads("hit_memory"))
	require.Equal(t, 1.0, reads("stale"))
	require.Equal(t, 0.0, reads("hit_store"))
	count, err := testutil.GatherAndCount(reg, "kck_product_miss_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, count, "one series: square")
	require.Eventually(t, func() bool { // the stale read's background refresh, and square/4
		return testutil.ToFloat64(collectorFor(t, reg, "kck_refreshes_total", "square", "ok")) == 2
	}, 2*time.Minute, 10*time.Millisecond)
}

// Lookup reads without computing; MemoryStats and ProductDependencies
// describe what this gateway holds and has seen.
func TestLookupAndInspection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	f.register(t, primers.Product{Name: "twice", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (int64, error) {
		var sq map[string]int64
		if err := primers.Read(ctx, "square/"+itoa(n), &sq); err != nil {
			return 0, err
		}
		return 2 * sq["square"], nil
	})})
	c := f.cache(t)
	ctx := context.Background()
	_, _, err := c.Lookup(ctx, "square/5")
	require.True(t, errors.Is(err, cache.ErrNotFound), "nothing computed on a lookup: %v", err)
	_, err = c.Get(ctx, "twice/5")
	require.NoError(t, err)
	e, inMem, err := c.Lookup(ctx, "square/5")
	require.NoError(t, err)
	require.True(t, inMem)
	require.JSONEq(t, `{"n":5,"square":25}`, string(e.Value))
	require.Equal(t, map[string][]string{"square": {"twice"}}, c.ProductDependencies())
	ms := c.MemoryStats()
	require.Equal(t, 2, ms.Entries)
	// otter adds an entry's weight once it has drained its write buffer,
	// behind the write: wait for it, as a scrape would see it.
	require.Eventually(t, func() bool { return c.MemoryStats().Bytes > 0 }, time.Minute, time.Millisecond)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// collectorFor returns the series of a counter vector by its product and
// outcome labels, from what reg gathers.
func collectorFor(t *testing.T, reg *prometheus.Registry, name, product, outcome string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["product"] == product && got["outcome"] == outcome {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return 0 })
}
