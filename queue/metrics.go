package queue

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/internal/collector"
)

type workerMetrics struct {
	claims    prometheus.Counter
	outcomes  *prometheus.CounterVec
	latency   prometheus.Histogram
	depth     prometheus.Gauge
	claimed   prometheus.Gauge
	delayed   prometheus.Gauge
	poisoned  prometheus.Gauge
	oldestAge prometheus.Gauge
}

func newWorkerMetrics(reg prometheus.Registerer) (*workerMetrics, error) {
	m := &workerMetrics{
		claims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_queue_claims_total",
			Help: "Refresh queue rows claimed by this gateway's worker.",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_queue_refreshes_total",
			Help: "Claimed keys by product and outcome: refreshed, skipped_fresh (a newer value was already stored), no_data, failed (retried with backoff or poisoned), lost_claim (finished after the lease ran out), abandoned (worker stopped).",
		}, []string{"product", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_queue_refresh_duration_seconds",
			Help:    "Time to refresh one claimed key.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_queue_depth",
			Help: "Keys waiting in the refresh queue or being refreshed (poisoned keys apart).",
		}),
		claimed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_queue_claimed",
			Help: "Refresh queue rows under a running claim.",
		}),
		delayed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_queue_delayed",
			Help: "Refresh queue rows waiting for their retry backoff.",
		}),
		poisoned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_queue_poisoned",
			Help: "Keys that failed too often and are no longer retried (see kck queue).",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_queue_oldest_request_age_seconds",
			Help: "How long the oldest waiting refresh request has waited.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	if err := m.register(reg); err != nil {
		return nil, fmt.Errorf("register queue metrics: %w", err)
	}
	return m, nil
}

// register registers each collector, or takes the one already registered
// under its name (see collector.Register).
func (m *workerMetrics) register(reg prometheus.Registerer) error {
	var err error
	if m.claims, err = collector.Register(reg, m.claims); err != nil {
		return err
	}
	if m.outcomes, err = collector.Register(reg, m.outcomes); err != nil {
		return err
	}
	if m.latency, err = collector.Register(reg, m.latency); err != nil {
		return err
	}
	for _, g := range []*prometheus.Gauge{&m.depth, &m.claimed, &m.delayed, &m.poisoned, &m.oldestAge} {
		if *g, err = collector.Register(reg, *g); err != nil {
			return err
		}
	}
	return nil
}
