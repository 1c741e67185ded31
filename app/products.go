package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cluster"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
	"github.com/kck-go/kck/tracing"
)

// Products is what a gateway serves: the registry, and for SQL products
// the database and their declarations.
type Products struct {
	reg         *primers.Registry
	readyChecks map[string]func(context.Context) error
	// The SQL products: their declarations, rules and GraphQL API, each
	// replaced whole when --sql-dir is reloaded (see reload.go); nil
	// without SQL products.
	rules atomic.Pointer[sqlproduct.Rules]
	decls atomic.Pointer[sqlproduct.Declarations]
	api   atomic.Pointer[sqlproduct.API]
	// sqlDir is the folder reloaded, "" when the SQL products are
	// embedded (they do not change while the program runs).
	sqlDir  string
	migrate bool // install the change triggers (--migrate)
	pool    *pgxpool.Pool
	// cache is set once the cache is open; its OnStored hook (onStored)
	// reads it from other goroutines.
	cache   atomic.Pointer[cache.Cache]
	closers []func()
}

// ProductsConfig says which products to load: the fields of Config of the
// same names.
type ProductsConfig struct {
	DataDir, PostgresURL, SQLDir string
	SQL                          fs.FS
	Register                     func(reg *primers.Registry, db *pgxpool.Pool) error
	// Migrate installs the SQL products' change triggers (as kck migrate
	// does), at start and when a reload names new source tables.
	Migrate bool
	// Trace records the database's statements as spans of the primers
	// that run them (tracing.PgxTracer), in sampled traces.
	Trace bool
}

func (c Config) products() ProductsConfig {
	return ProductsConfig{DataDir: c.DataDir, PostgresURL: c.PostgresURL, SQLDir: c.SQLDir, SQL: c.SQL, Register: c.Register, Migrate: c.Migrate}
}

// LoadProducts registers the application's Go products (cfg.Register) and,
// with a Postgres URL, the SQL products of cfg.SQL or cfg.SQLDir. With
// neither Register nor SQL files named, it loads the demo: its Go products
// over the built-in dataset, or its SQL products with a database.
func LoadProducts(ctx context.Context, cfg ProductsConfig, log *slog.Logger) (*Products, error) {
	p := &Products{reg: primers.NewRegistry(), readyChecks: map[string]func(context.Context) error{}}
	demoProducts := cfg.Register == nil && cfg.SQL == nil && cfg.SQLDir == ""
	if cfg.PostgresURL == "" {
		if cfg.Register != nil {
			if err := cfg.Register(p.reg, nil); err != nil {
				return nil, fmt.Errorf("register products: %w", err)
			}
			return p, nil
		}
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
		if err := demo.Register(p.reg, ds); err != nil {
			return nil, fmt.Errorf("register demo products: %w", err)
		}
		return p, nil
	}
	var tracer pgx.QueryTracer
	if cfg.Trace {
		tracer = tracing.PgxTracer{}
	}
	pool, err := source.OpenTraced(ctx, cfg.PostgresURL, tracer)
	if err != nil {
		return nil, err
	}
	p.pool = pool
	p.closers = append(p.closers, pool.Close)
	p.readyChecks["postgres"] = pool.Ping
	if cfg.Register != nil {
		if err := cfg.Register(p.reg, pool); err != nil {
			p.Close()
			return nil, fmt.Errorf("register products: %w", err)
		}
	}
	fsys, where := cfg.SQL, "the application's SQL products"
	switch {
	case fsys != nil:
	case cfg.SQLDir != "":
		fsys, where = os.DirFS(cfg.SQLDir), cfg.SQLDir
	case demoProducts:
		fsys, where = demo.SQL(), "the demo's SQL products"
	default:
		return p, nil // Go products only
	}
	decls, err := sqlproduct.LoadFS(fsys)
	if err != nil {
		p.Close()
		return nil, err
	}
	if cfg.SQL == nil && cfg.SQLDir != "" {
		p.sqlDir = cfg.SQLDir
	}
	p.migrate = cfg.Migrate
	if cfg.Migrate {
		if err := source.Migrate(ctx, pool, decls.Tables()); err != nil {
			p.Close()
			return nil, fmt.Errorf("--migrate: the SQL products' change triggers: %w", err)
		}
	}
	// The placeholders' types, so that a value they cannot take is the
	// caller's error before any query (see sqlproduct.Types), and the
	// GraphQL API of the products no compiled schema declares.
	var api *sqlproduct.API
	if err := pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		for _, e := range sqlproduct.Types(ctx, c.Conn(), decls) {
			log.Warn("SQL statement does not prepare; its parameters are checked by the database alone (kck check says more)", "err", e)
		}
		var err error
		if api, err = sqlproduct.DescribeAPI(ctx, c.Conn(), decls); err != nil {
			// At start a statement may depend on what is made later: the
			// others are served, and these through product(key).
			log.Error("SQL products without a typed GraphQL field (they are served by product(key) and /fetch)", "err", err)
		}
		return nil
	}); err != nil {
		p.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rules, err := sqlproduct.Register(p.reg, pool, decls, log)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.decls.Store(decls)
	p.rules.Store(rules)
	p.api.Store(api)
	log.Info("SQL products loaded", "from", where, "products", len(decls.Products), "updaters", len(decls.Updaters))
	return p, nil
}

// Registry is the products' registry.
func (p *Products) Registry() *primers.Registry { return p.reg }

// follow follows the source tables' changes into refreshes of the
// products built on them: one gateway of the cluster does (elected by a
// lease in the store), reading the change log from where the cluster's
// last follower stopped, and hands each affected key to one gateway
// (cache.Dispatch); every gateway learns the new values from the bus.
//
// The returned stop ends following; call it before the cache closes.
func (p *Products) follow(c *cache.Cache, b backend.Backend, name string, cfg Config, log *slog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (stop func(), err error) {
	if p.decls.Load() == nil {
		return func() {}, nil
	}
	f, err := source.NewFollower(source.FollowOptions{
		URL:            cfg.PostgresURL,
		Name:           name,
		Logger:         log,
		Registerer:     reg,
		TracerProvider: tp,
		Refresh:        c.Dispatch,
		Affected: func(ch source.Change) []string {
			return p.decls.Load().Affected(p.reg, ch, c.Instances)
		},
		Resync: func(ctx context.Context) []string { return p.sourcedKeys(ctx, b.Scanner()) },
	})
	if err != nil {
		return nil, err
	}
	l, err := cluster.Start(cluster.Options{
		Store: b.Store(), Name: "follow/source", Owner: c.Owner(), TTL: cfg.Bus.FollowLease, Logger: log, Registerer: reg,
		// Cut off from the bus, a follower's refreshes would reach no other
		// gateway: it steps down, and a gateway that hears the bus follows
		// (with the whole bus down, nobody does; the changes wait in the
		// log until it is back).
		Eligible: c.BusConnected,
		Lead: func(ctx context.Context) {
			// Keys of products every change refreshes whole that other
			// gateways stored before this one started (see Instances).
			if err := c.SeedInstances(ctx, b.Scanner()); err != nil && ctx.Err() == nil {
				log.Warn("change log: reading the stored keys of products refreshed whole failed; refreshing those this gateway knows", "err", err)
			}
			f.Run(ctx)
		},
	})
	if err != nil {
		return nil, err
	}
	p.readyChecks["change_feed"] = func(context.Context) error {
		if !f.Connected() {
			return fmt.Errorf("following the source tables' change log, and not connected (reconnecting)")
		}
		return nil
	}
	return l.Close, nil
}

// maxResyncKeys bounds the keys a resync collects.
const maxResyncKeys = 1 << 20

// sourcedKeys lists the stored keys of every product built on a source
// table, for a resync.
func (p *Products) sourcedKeys(ctx context.Context, sc cache.Scanner) []string {
	sourced := map[string]bool{}
	for _, prod := range p.decls.Load().Products {
		if len(prod.Sources) > 0 {
			sourced[prod.Name] = true
		}
	}
	var keys []string
	errFull := errors.New("full")
	err := sc.Scan(ctx, func(e cache.Entry) error {
		name, _, _ := strings.Cut(e.Key, "/")
		if sourced[name] {
			if len(keys) == maxResyncKeys {
				return errFull
			}
			keys = append(keys, e.Key)
		}
		return nil
	})
	if err != nil {
		slog.Default().Warn("resync: listing the stored keys stopped early", "keys", len(keys), "err", err)
	}
	return keys
}

// onStored applies after_primes rules: the keys they name are refreshed
// in the background on this gateway.
func (p *Products) onStored(key string) {
	c, rules := p.cache.Load(), p.rules.Load()
	if c == nil || rules == nil {
		return
	}
	for _, k := range rules.AfterPrime(key) {
		c.RefreshInBackground(k, nil) // never blocks a computation
	}
}

// Close releases the database and the dataset.
func (p *Products) Close() {
	for _, f := range p.closers {
		f()
	}
}
