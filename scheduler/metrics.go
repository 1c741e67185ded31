package scheduler

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	var err error
	if m.runs, err = register(reg, m.runs); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.warmKeys, err = register(reg, m.warmKeys); err != nil {
		return nil, err
	}
	if m.ready, err = register(reg, m.ready); err != nil {
		return nil, err
	}
	if m.domainMembers, err = register(reg, m.domainMembers); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (several schedulers in one process share the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register scheduler metrics: %w", err)
}
