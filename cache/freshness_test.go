package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// gauges reads the gauges named name from reg, by their product label.
func gauges(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "product" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// The age of the values a gateway holds, against each product's freshness
// target, as /metrics reads it.
func TestFreshnessMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), FreshnessTarget: 30 * time.Second})
	f.register(t, primers.Product{Name: "cube", Params: intParam, Primer: squarePrimer(), FreshnessTarget: time.Minute})
	f.register(t, primers.Product{Name: "plain", Params: intParam, Primer: squarePrimer()})
	reg := prometheus.NewRegistry()
	c := f.cache(t, func(o *cache.Options) { o.Registerer = reg })
	ctx := context.Background()

	for _, k := range []string{"square/1", "square/2", "plain/1"} {
		_, err := c.Get(ctx, k)
		require.NoError(t, err)
	}
	f.clock.Advance(40 * time.Second)
	_, err := c.Refresh(ctx, "square/2")
	require.NoError(t, err)
	f.clock.Advance(time.Second)

	require.Equal(t, map[string]float64{"square": 30, "cube": 60}, gauges(t, reg, "kck_freshness_target_seconds"), "products without a target are left out")
	require.Equal(t, map[string]float64{"square": 41, "cube": 0, "plain": 41}, gauges(t, reg, "kck_product_oldest_age_seconds"), "every product's age and count")
	require.Equal(t, map[string]float64{"square": 1, "cube": 0}, gauges(t, reg, "kck_product_values_beyond_target"), "square/1; square/2 was refreshed")
	require.Equal(t, map[string]float64{"square": 2, "cube": 0, "plain": 1}, gauges(t, reg, "kck_product_values_held"))

	_, err = c.Refresh(ctx, "square/1")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"square": 0, "cube": 0}, gauges(t, reg, "kck_product_values_beyond_target"))
}
