package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// products is what the gateway serves: the registry, and for SQL products
// the database, the change listener and the refresher behind them.
type products struct {
	reg         *primers.Registry
	readyChecks map[string]func(context.Context) error
	rules       *sqlproduct.Rules
	decls       *sqlproduct.Declarations
	pool        *pgxpool.Pool
	listener    *source.Listener
	refresher   *refresher
	// ds is the Go demo's dataset (nil with Postgres).
	ds *demo.Dataset
	// live is set once the refresher runs; the cache's OnStored hook reads
	// it from other goroutines.
	live    atomic.Pointer[refresher]
	closers []func()
}

// loadProducts registers the Go demo products over the built-in dataset, or,
// with a Postgres URL, the SQL products of cfg.SQLDir (default: the demo's).
func loadProducts(ctx context.Context, cfg serveConfig, log *slog.Logger) (*products, error) {
	p := &products{reg: primers.NewRegistry(), readyChecks: map[string]func(context.Context) error{}}
	if cfg.PostgresURL == "" {
		// The demo dataset keeps its added titles in the data directory (beside
		// the embedded store), so that both survive a restart together. It is
		// per process: gateways sharing Cassandra each have their own.
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, err
		}
		ds, err := demo.OpenDataset(filepath.Join(cfg.DataDir, "demo-titles.jsonl"))
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, func() { _ = ds.Close() })
		p.ds = ds
		if err := demo.Register(p.reg, ds); err != nil {
			return nil, fmt.Errorf("register demo products: %w", err)
		}
		return p, nil
	}
	pool, err := source.Open(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	p.pool = pool
	p.closers = append(p.closers, pool.Close)
	p.readyChecks["postgres"] = pool.Ping
	var fsys fs.FS = demo.SQL()
	where := "the demo's SQL products"
	if cfg.SQLDir != "" {
		fsys, where = os.DirFS(cfg.SQLDir), cfg.SQLDir
	}
	if p.decls, err = sqlproduct.LoadFS(fsys); err != nil {
		p.close()
		return nil, err
	}
	if p.rules, err = sqlproduct.Register(p.reg, pool, p.decls); err != nil {
		p.close()
		return nil, err
	}
	log.Info("SQL products loaded", "from", where, "products", len(p.decls.Products), "updaters", len(p.decls.Updaters))
	return p, nil
}

// start follows the source tables' changes into the cache.
func (p *products) start(ctx context.Context, c *cache.Cache, cfg serveConfig, log *slog.Logger, reg prometheus.Registerer) error {
	if p.pool == nil {
		return nil
	}
	p.refresher = newRefresher(c, log, reg)
	p.closers = append([]func(){p.refresher.close}, p.closers...)
	l, err := source.Listen(ctx, source.ListenerOptions{
		URL:    cfg.PostgresURL,
		Logger: log,
		OnChange: func(_ context.Context, ch source.Change) {
			p.refresher.changes.Inc()
			for _, k := range p.decls.Affected(p.reg, ch, c.Keys) {
				p.refresher.enqueue(k)
			}
		},
		OnResync: func(context.Context) {
			// Changes made while we were away were not seen: refresh every
			// cached instance of every product built on a source table.
			for _, prod := range p.decls.Products {
				if len(prod.Sources) == 0 {
					continue
				}
				for _, k := range c.Keys(prod.Name) {
					p.refresher.enqueue(k)
				}
			}
		},
	})
	if err != nil {
		return err
	}
	p.listener = l
	p.live.Store(p.refresher)
	p.closers = append([]func(){func() { _ = l.Close() }}, p.closers...)
	p.readyChecks["change_feed"] = func(context.Context) error {
		if !l.Connected() {
			return fmt.Errorf("not listening (reconnecting)")
		}
		return nil
	}
	return nil
}

// onStored applies after_primes rules.
func (p *products) onStored(key string) {
	r := p.live.Load()
	if r == nil {
		return
	}
	for _, k := range p.rules.AfterPrime(key) {
		go r.enqueue(k) // never block a computation on the queue
	}
}

func (p *products) close() {
	for _, f := range p.closers {
		f()
	}
}

// refresher refreshes keys in the background, each pending key once however
// often it is asked for, with a few workers.
type refresher struct {
	c       *cache.Cache
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]bool
	queue   chan queuedKey
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	changes, refreshes, failures prometheus.Counter
	lag                          prometheus.Histogram
}

// queuedKey is a key to refresh and when the first change asking for it
// arrived.
type queuedKey struct {
	key string
	at  time.Time
}

func newRefresher(c *cache.Cache, log *slog.Logger, reg prometheus.Registerer) *refresher {
	ctx, cancel := context.WithCancel(context.Background())
	r := &refresher{c: c, log: log, pending: map[string]bool{}, queue: make(chan queuedKey, 4096), ctx: ctx, cancel: cancel,
		changes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_changes_total", Help: "Source row changes received from Postgres."}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refreshes_total", Help: "Products refreshed because their source changed."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refresh_failures_total", Help: "Such refreshes that failed."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_source_fresh_lag_seconds",
			Help:    "From a source change (or refresh rule) received by this gateway to the product refreshed and stored: the first change, when several merged.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(r.changes, r.refreshes, r.failures, r.lag)
	}
	for range 4 {
		r.wg.Go(r.work)
	}
	return r
}

func (r *refresher) enqueue(key string) {
	r.mu.Lock()
	if r.pending[key] {
		r.mu.Unlock()
		return
	}
	r.pending[key] = true
	r.mu.Unlock()
	select {
	case r.queue <- queuedKey{key: key, at: time.Now()}:
	case <-r.ctx.Done():
	}
}

func (r *refresher) work() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case q := <-r.queue:
			key := q.key
			r.mu.Lock()
			delete(r.pending, key) // a change from now on asks again
			r.mu.Unlock()
			ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
			_, err := r.c.Refresh(ctx, key)
			cancel()
			r.refreshes.Inc()
			if err == nil {
				r.lag.Observe(time.Since(q.at).Seconds())
			}
			if err != nil {
				r.failures.Inc()
				r.log.Warn("refresh after a source change failed", "key", key, "err", err)
			}
		}
	}
}

func (r *refresher) close() {
	r.cancel()
	r.wg.Wait()
}
