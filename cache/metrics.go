package cache

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's Prometheus series. Counters on the hit path carry
// no labels, so a hit costs one atomic add.
type metrics struct {
	hitMemory     prometheus.Counter
	hitStore      prometheus.Counter
	stale         prometheus.Counter
	miss          prometheus.Counter
	negativeHits  prometheus.Counter
	missRefused   prometheus.Counter
	primerRuns    *prometheus.CounterVec
	primerErrors  *prometheus.CounterVec
	primerSeconds *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	leaseWaits    prometheus.Counter
	feedDrops     prometheus.Counter
	feedLag       prometheus.Histogram
	refreshes     *prometheus.CounterVec

	// byProduct holds each registered product's read counters, resolved
	// once at New so that a hit costs a map lookup, not a label lookup.
	byProduct map[string]*productReads
}

// productReads are one product's read outcomes (kck_product_reads_total)
// and its miss latency (kck_product_miss_duration_seconds).
type productReads struct {
	hitMemory, hitStore, stale, miss prometheus.Counter
	missSeconds                      prometheus.Observer
}

// productOf returns the counters of key's product; nil for a key of no
// registered product (a plain Set key), which counts only in the totals.
func (m *metrics) productOf(key string) *productReads {
	name, _, _ := strings.Cut(key, "/") // canonical keys; no allocation
	return m.byProduct[name]
}

func newMetrics(reg prometheus.Registerer, products []string) *metrics {
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_cache_reads_total",
		Help: "Product reads by outcome: hit_memory, hit_store, stale (served stale), miss (computed or waited for), negative (a remembered no-data or bad-input answer), refused (the request's miss budget was spent).",
	}, []string{"outcome"})
	m := &metrics{
		hitMemory:    reads.WithLabelValues("hit_memory"),
		hitStore:     reads.WithLabelValues("hit_store"),
		stale:        reads.WithLabelValues("stale"),
		miss:         reads.WithLabelValues("miss"),
		negativeHits: reads.WithLabelValues("negative"),
		missRefused:  reads.WithLabelValues("refused"),
		primerRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_primer_runs_total",
			Help: "Primer runs by product.",
		}, []string{"product"}),
		primerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_primer_errors_total",
			Help: "Primer failures (errors and panics) by product.",
		}, []string{"product"}),
		primerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kck_primer_duration_seconds",
			Help:    "Primer run time by product.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"product"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_store_errors_total",
			Help: "Store calls that failed, by operation.",
		}, []string{"op"}),
		leaseWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_lease_waits_total",
			Help: "Misses that waited for another process computing the same key.",
		}),
		feedDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_change_feed_drops_total",
			Help: "In-process values dropped because another gateway stored a newer version or deleted the key.",
		}),
		feedLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_change_feed_lag_seconds",
			Help:    "From another gateway publishing a change to this gateway dropping its older copy.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 10),
		}),
	}
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_refreshes_total",
		Help: "Refreshes (a recomputation whatever the cache held: scheduled, queued, after a source change or an update, in the background after a stale read, or asked for) by product and outcome: ok, failed.",
	}, []string{"product", "outcome"})
	preads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_product_reads_total",
		Help: "Product reads by product and outcome: hit_memory, hit_store, stale, miss (as kck_cache_reads_total, per registered product).",
	}, []string{"product", "outcome"})
	missSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kck_product_miss_duration_seconds",
		Help:    "Time a read that missed both tiers took to get its value (computed here, or waited for from another gateway), by product.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"product"})
	m.byProduct = make(map[string]*productReads, len(products))
	for _, name := range products {
		m.byProduct[name] = &productReads{
			hitMemory:   preads.WithLabelValues(name, "hit_memory"),
			hitStore:    preads.WithLabelValues(name, "hit_store"),
			stale:       preads.WithLabelValues(name, "stale"),
			miss:        preads.WithLabelValues(name, "miss"),
			missSeconds: missSeconds.WithLabelValues(name),
		}
	}
	if reg != nil {
		reg.MustRegister(reads, m.primerRuns, m.primerErrors, m.primerSeconds, m.storeErrors, m.leaseWaits, m.feedDrops, m.feedLag,
			m.refreshes, preads, missSeconds)
	}
	return m
}
