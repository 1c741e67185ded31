package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/backend"
)

// storeFlags are the flags of the commands that work on a store offline
// (warm, refresh, queue, dump, load): which store, and where it is. They
// read the same KCK_* variables as kck serve.
type storeFlags struct {
	cfg backend.Config
}

func addStoreFlags(f *flags) *storeFlags {
	s := &storeFlags{}
	d := app.Defaults()
	f.str(&s.cfg.Kind, "store", "KCK_STORE", d.Store, "store: embedded, cassandra or postgres")
	f.str(&s.cfg.DataDir, "data-dir", "KCK_DATA_DIR", d.DataDir, "directory of the embedded store")
	cassandraFlags(f, &s.cfg.Cassandra)
	storePostgresFlags(f, &s.cfg.Postgres)
	return s
}

// storeCommand is the flag set of a command that works on a store: the
// store flags, and --help printing doc (the text above the flags).
func storeCommand(name, doc string, stderr io.Writer) (*flags, *storeFlags) {
	f := newFlags(name, stderr)
	sf := addStoreFlags(f)
	f.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", doc)
		f.PrintDefaults()
	}
	return f, sf
}

// parse parses args and checks the store flags. When ok is false the
// command returns code: 0 after --help, 2 for a usage error.
func (s *storeFlags) parse(f *flags, args []string, stderr io.Writer) (code int, ok bool) {
	if err := f.parse(args); err != nil {
		return parseCode(err), false
	}
	if s.cfg.Postgres.URL == "" {
		// As kck serve: the postgres store's database defaults to the
		// source database, the command's --postgres-url when it has one.
		s.cfg.Postgres.URL = os.Getenv("KCK_POSTGRES_URL")
		if pg := f.Lookup("postgres-url"); pg != nil {
			s.cfg.Postgres.URL = pg.Value.String()
		}
	}
	if err := s.cfg.Check(); err != nil {
		fmt.Fprintf(stderr, "kck %s: %v\n", f.Name(), err)
		return 2, false
	}
	return 0, true
}

// storeUsage is the sentence every such command's --help carries.
const storeUsage = `With the embedded store the gateway must be stopped (it holds the store's
file); with Cassandra or PostgreSQL it works beside running gateways.`

// open opens the backend. The embedded store is given one second: a
// running gateway holds its lock, and saying so beats hanging.
func (s *storeFlags) open(ctx context.Context) (backend.Backend, error) {
	cfg := s.cfg
	cfg.LockTimeout = time.Second
	return backend.Open(ctx, cfg)
}

// productFlags say which products a command computes, as for kck serve.
type productFlags struct{ postgresURL, sqlDir string }

func addProductFlags(f *flags) *productFlags {
	p := &productFlags{}
	postgresFlag(f, &p.postgresURL, "compute the SQL products from this PostgreSQL database")
	sqlDirFlag(f, &p.sqlDir)
	return p
}

// offlineCache is what kck warm and kck refresh compute with: the store,
// the gateway's products and a cache over them, as a gateway has, without
// serving.
type offlineCache struct {
	c       *cache.Cache
	backend backend.Backend
	prods   *app.Products
}

func openOfflineCache(ctx context.Context, sf *storeFlags, pf *productFlags, log *slog.Logger) (*offlineCache, error) {
	b, err := sf.open(ctx)
	if err != nil {
		return nil, err
	}
	prods, err := app.LoadProducts(ctx, app.ProductsConfig{DataDir: sf.cfg.DataDir, PostgresURL: pf.postgresURL, SQLDir: pf.sqlDir}, log)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	c, err := cache.New(cache.Options{Registry: prods.Registry(), Store: b.Store(), Logger: log})
	if err != nil {
		prods.Close()
		_ = b.Close()
		return nil, err
	}
	return &offlineCache{c: c, backend: b, prods: prods}, nil
}

func (o *offlineCache) close() {
	_ = o.c.Close()
	o.prods.Close()
	_ = o.backend.Close()
}
