package app

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// Products is what a gateway serves: the registry, and for SQL products
// the database and their declarations.
type Products struct {
	reg         *primers.Registry
	readyChecks map[string]func(context.Context) error
	rules       *sqlproduct.Rules
	decls       *sqlproduct.Declarations
	pool        *pgxpool.Pool
	// follower is set once the source follower runs; the cache's OnStored
	// hook reads it from other goroutines.
	follower atomic.Pointer[source.Follower]
	closers  []func()
}

// ProductsConfig says which products to load: the fields of Config of the
// same names.
type ProductsConfig struct {
	DataDir, PostgresURL, SQLDir string
	SQL                          fs.FS
	Register                     func(reg *primers.Registry, db *pgxpool.Pool) error
}

func (c Config) products() ProductsConfig {
	return ProductsConfig{DataDir: c.DataDir, PostgresURL: c.PostgresURL, SQLDir: c.SQLDir, SQL: c.SQL, Register: c.Register}
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
	pool, err := source.Open(ctx, cfg.PostgresURL)
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
	if p.decls, err = sqlproduct.LoadFS(fsys); err != nil {
		p.Close()
		return nil, err
	}
	// The placeholders' types, so that a value they cannot take is the
	// caller's error before any query (see sqlproduct.Types).
	if err := pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		for _, e := range sqlproduct.Types(ctx, c.Conn(), p.decls) {
			log.Warn("SQL statement does not prepare; its parameters are checked by the database alone (kck check says more)", "err", e)
		}
		return nil
	}); err != nil {
		p.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if p.rules, err = sqlproduct.Register(p.reg, pool, p.decls, log); err != nil {
		p.Close()
		return nil, err
	}
	log.Info("SQL products loaded", "from", where, "products", len(p.decls.Products), "updaters", len(p.decls.Updaters))
	return p, nil
}

// Registry is the products' registry.
func (p *Products) Registry() *primers.Registry { return p.reg }

// follow follows the source tables' changes into the cache: every key a
// change (or, after a reconnection, a missed change) affects is refreshed
// in the background.
func (p *Products) follow(ctx context.Context, c *cache.Cache, url string, log *slog.Logger, reg prometheus.Registerer) error {
	if p.decls == nil {
		return nil
	}
	f, err := source.Follow(ctx, source.FollowOptions{
		URL:        url,
		Logger:     log,
		Registerer: reg,
		Refresh:    c.RefreshInBackground,
		Affected: func(ch source.Change) []string {
			return p.decls.Affected(p.reg, ch, c.Keys)
		},
		Resync: func() []string {
			// Refresh every cached instance of every product built on a
			// source table.
			var keys []string
			for _, prod := range p.decls.Products {
				if len(prod.Sources) > 0 {
					keys = append(keys, c.Keys(prod.Name)...)
				}
			}
			return keys
		},
	})
	if err != nil {
		return err
	}
	p.follower.Store(f)
	p.closers = append([]func(){func() { _ = f.Close() }}, p.closers...)
	p.readyChecks["change_feed"] = func(context.Context) error {
		if !f.Connected() {
			return fmt.Errorf("not listening (reconnecting)")
		}
		return nil
	}
	return nil
}

// onStored applies after_primes rules.
func (p *Products) onStored(key string) {
	f := p.follower.Load()
	if f == nil || p.rules == nil {
		return
	}
	if keys := p.rules.AfterPrime(key); len(keys) > 0 {
		f.Refresh(keys...) // in the background: never blocks a computation
	}
}

// Close releases the database and the dataset.
func (p *Products) Close() {
	for _, f := range p.closers {
		f()
	}
}
