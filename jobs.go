package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// openQueue opens the refresh queue that lives in the store: the embedded
// store's file, or the Cassandra cluster, so that every gateway sharing the
// store shares the queue.
func openQueue(s cache.Store, cfg queue.Config) (queue.Store, error) {
	switch s := s.(type) {
	case *bolt.Store:
		return s.Queue(cfg)
	case *cassandra.Store:
		return s.Queue(cfg)
	case *lateStore:
		return &lateQueue{store: s, cfg: cfg}, nil
	}
	return nil, fmt.Errorf("store %T has no refresh queue", s)
}

// startScheduler starts the gateway's scheduled work: the products'
// refresh, warming and domains, and a worker draining the shared refresh
// queue. Warming runs in the background; Ready says when it is done.
func startScheduler(c *cache.Cache, prods *products, cfg serveConfig, log *slog.Logger, reg prometheus.Registerer) (*scheduler.Scheduler, error) {
	q, err := openQueue(c.Store(), queue.Config{})
	if err != nil {
		return nil, err
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: c, LeaseTTL: cfg.QueueLease, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	s, err := scheduler.New(scheduler.Options{
		Cache:           c,
		Queue:           q,
		Worker:          w,
		DrainInterval:   cfg.DrainInterval,
		WarmConcurrency: cfg.WarmConcurrency,
		Logger:          log,
		Registerer:      reg,
	})
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}
