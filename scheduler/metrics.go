package scheduler

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/internal/collector"
)

type metrics struct {
	runs          *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	warmKeys      *prometheus.CounterVec
	ready         prometheus.Gauge
	domainMembers *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_scheduler_job_runs_total",
			Help: "Scheduled job runs on this gateway by job and outcome: ok, failed, other_gateway (another gateway took the slot), lock_failed (the store did not answer).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kck_scheduler_job_duration_seconds",
			Help:    "Scheduled job run time by job.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"job"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_scheduler_refreshes_total",
			Help: "Refreshes asked for by scheduled jobs, by outcome: enqueued, refreshed, skipped_fresh, failed.",
		}, []string{"outcome"}),
		warmKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_warm_keys_total",
			Help: "Keys warmed at start, by outcome: ok, failed.",
		}, []string{"outcome"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_warm_done",
			Help: "1 once warming at start has finished.",
		}),
		domainMembers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kck_domain_members",
			Help: "Members of each domain at its last check, by member product.",
		}, []string{"product"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := m.register(reg); err != nil {
		return nil, fmt.Errorf("register scheduler metrics: %w", err)
	}
	return m, nil
}

// register registers each collector, or takes the one already registered
// under its name (see collector.Register).
func (m *metrics) register(reg prometheus.Registerer) error {
	var err error
	if m.runs, err = collector.Register(reg, m.runs); err != nil {
		return err
	}
	if m.duration, err = collector.Register(reg, m.duration); err != nil {
		return err
	}
	if m.requests, err = collector.Register(reg, m.requests); err != nil {
		return err
	}
	if m.warmKeys, err = collector.Register(reg, m.warmKeys); err != nil {
		return err
	}
	if m.ready, err = collector.Register(reg, m.ready); err != nil {
		return err
	}
	if m.domainMembers, err = collector.Register(reg, m.domainMembers); err != nil {
		return err
	}
	return nil
}
