package cache

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// freshnessCollector reports this gateway's in-process values of each
// product, their oldest age, and how many are past the product's
// FreshnessTarget, computed when /metrics is scraped: the hit path pays
// nothing for it. A scrape walks the in-process tier once.
type freshnessCollector struct {
	c                      *Cache
	target, oldest, beyond *prometheus.Desc
	held                   *prometheus.Desc
}

func newFreshnessCollector(c *Cache) *freshnessCollector {
	l := []string{"product"}
	return &freshnessCollector{
		c: c,
		target: prometheus.NewDesc("kck_freshness_target_seconds",
			"A product's freshness target: how old its values may grow.", l, nil),
		oldest: prometheus.NewDesc("kck_product_oldest_age_seconds",
			"Age of the oldest value of a product in this gateway's in-process tier (0 when it holds none).", l, nil),
		beyond: prometheus.NewDesc("kck_product_values_beyond_target",
			"Values of a product in this gateway's in-process tier older than its freshness target.", l, nil),
		held: prometheus.NewDesc("kck_product_values_held",
			"Values of a product in this gateway's in-process tier (its cached instances here).", l, nil),
	}
}

func (f *freshnessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.target
	ch <- f.oldest
	ch <- f.beyond
	ch <- f.held
}

type ageStats struct {
	target         time.Duration
	oldest         time.Duration
	beyond, values int
}

func (f *freshnessCollector) Collect(ch chan<- prometheus.Metric) {
	byName := map[string]*ageStats{}
	for _, p := range f.c.reg.Products() {
		byName[p.Name] = &ageStats{target: p.FreshnessTarget}
	}
	if len(byName) == 0 {
		return
	}
	now := f.c.clock.Now()
	for key, e := range f.c.mem.All() {
		name, _, _ := strings.Cut(key, "/") // canonical keys; no allocation
		st := byName[name]
		if st == nil || e.Expired(now) {
			continue
		}
		age := now.Sub(e.ComputedAt)
		st.values++
		st.oldest = max(st.oldest, age)
		if st.target > 0 && age > st.target {
			st.beyond++
		}
	}
	for name, st := range byName {
		ch <- prometheus.MustNewConstMetric(f.oldest, prometheus.GaugeValue, st.oldest.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(f.held, prometheus.GaugeValue, float64(st.values), name)
		if st.target > 0 {
			ch <- prometheus.MustNewConstMetric(f.target, prometheus.GaugeValue, st.target.Seconds(), name)
			ch <- prometheus.MustNewConstMetric(f.beyond, prometheus.GaugeValue, float64(st.beyond), name)
		}
	}
}
