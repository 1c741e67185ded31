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
	busSent       prometheus.Counter
	busReceived   prometheus.Counter
	busLost       prometheus.Counter
	busResyncs    prometheus.Counter
	busApplied    *prometheus.CounterVec
	busLag        prometheus.Histogram
	dispatches    *prometheus.CounterVec
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
		busLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_bus_disconnects_total",
			Help: "Times the change bus connection was lost (values are served flagged stale until it is back).",
		}),
		busResyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_bus_resyncs_total",
			Help: "Times the in-process tier was dropped because announcements may have been missed (a reconnection, a skipped sequence number, a peer's rejected publish).",
		}),
		busApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_bus_applied_total",
			Help: "Other gateways' announcements that changed this gateway's in-process tier: replaced (by the inline value), dropped (read from the store next time).",
		}, []string{"outcome"}),
		busLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_bus_lag_seconds",
			Help:    "From another gateway announcing a change to this gateway applying it (clocks compared across gateways).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	m.dispatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_dispatches_total",
		Help: "Source-changed keys this gateway (the follower of the source tables) handed out, by outcome: ok and failed (refreshed by the gateway that took it), local (refreshed here: no bus, or nobody took it).",
	}, []string{"outcome"})
	announcements := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_bus_announcements_total",
		Help: "Change announcements on the bus, by direction: sent (by this gateway), received (from the others).",
	}, []string{"direction"})
	m.busSent, m.busReceived = announcements.WithLabelValues("sent"), announcements.WithLabelValues("received")
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_refreshes_total",
		Help: "Refreshes (a recomputation whatever the cache held: scheduled, queued, after a source change or an update, in the background after a stale read, or asked for) by product and outcome: ok, failed, skipped (a source change of a key no gateway held: nothing to refresh).",
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
		reg.MustRegister(reads, m.primerRuns, m.primerErrors, m.primerSeconds, m.storeErrors, m.leaseWaits, m.busLost, m.busResyncs, m.busApplied, m.busLag, m.dispatches, announcements,
			m.refreshes, preads, missSeconds)
	}
	return m
}
