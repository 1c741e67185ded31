package source

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FollowOptions configure a Follower.
type FollowOptions struct {
	// URL of the database whose changes are followed.
	URL    string
	Logger *slog.Logger
	// Registerer receives the follower's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Affected lists the keys a change makes stale (the SQL products'
	// sources: sqlproduct.Declarations.Affected).
	Affected func(Change) []string
	// Resync lists the keys to refresh after a reconnection: changes made
	// while the listener was away were not seen.
	Resync func() []string
	// Refresh recomputes key in the background and calls done with the
	// outcome (the cache's one background refresh path:
	// cache.Cache.RefreshInBackground). Required.
	Refresh func(key string, done func(error))
}

// Follower follows the source tables' changes into refreshes of the
// products built on them.
type Follower struct {
	opts                         FollowOptions
	l                            *Listener
	changes, refreshes, failures prometheus.Counter
	lag                          prometheus.Histogram
}

// Follow connects (the first connection must succeed) and follows.
func Follow(ctx context.Context, opts FollowOptions) (*Follower, error) {
	if opts.Refresh == nil {
		return nil, errors.New("source: FollowOptions.Refresh is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &Follower{opts: opts,
		changes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_changes_total", Help: "Source row changes received from Postgres."}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refreshes_total", Help: "Products refreshed because their source changed."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refresh_failures_total", Help: "Such refreshes that failed."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_source_fresh_lag_seconds",
			Help:    "From a source change (or refresh rule) received by this gateway to the product refreshed and stored: the first change, when several merged.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	if opts.Registerer != nil {
		if err := registerAll(opts.Registerer, f.changes, f.refreshes, f.failures, f.lag); err != nil {
			return nil, err
		}
	}
	l, err := Listen(ctx, ListenerOptions{
		URL:    opts.URL,
		Logger: opts.Logger,
		OnChange: func(_ context.Context, ch Change) {
			f.changes.Inc()
			if opts.Affected != nil {
				f.Refresh(opts.Affected(ch)...)
			}
		},
		OnResync: func(context.Context) {
			if opts.Resync != nil {
				f.Refresh(opts.Resync()...)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	f.l = l
	return f, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Refresh refreshes keys because their source changed (or a refresh rule
// asked), counting them and their lag from now.
func (f *Follower) Refresh(keys ...string) {
	at := time.Now()
	for _, k := range keys {
		f.opts.Refresh(k, func(err error) {
			f.refreshes.Inc()
			if err != nil {
				f.failures.Inc()
				f.opts.Logger.Warn("refresh after a source change failed", "key", k, "err", err)
				return
			}
			f.lag.Observe(time.Since(at).Seconds())
		})
	}
}

// Connected reports whether the listener is connected now.
func (f *Follower) Connected() bool { return f.l.Connected() }

// Close stops following.
func (f *Follower) Close() error { return f.l.Close() }
