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
	natsbus "github.com/kck-go/kck/cache/nats"
)

// storeFlags are the flags of the commands that work on a store offline
// (warm, refresh, queue, dump, load): which store, and where it is. They
// read the same KCK_* variables as kck serve.
type storeFlags struct {
	cfg backend.Config
	bus app.BusConfig
}

func addStoreFlags(f *flags) *storeFlags {
	s := &storeFlags{}
	d := app.Defaults()
	f.str(&s.cfg.Kind, "store", "KCK_STORE", d.Store, "store: embedded, cassandra or postgres")
	f.str(&s.cfg.DataDir, "data-dir", "KCK_DATA_DIR", d.DataDir, "directory of the embedded store")
	cassandraFlags(f, &s.cfg.Cassandra)
	busFlags(f, &s.bus)
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
	bus     *natsbus.Bus // nil without --bus-url
	ownBus  cache.Bus    // the store's own, when it has one and no --bus-url
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
	oc := &offlineCache{backend: b, prods: prods}
	opts := cache.Options{Registry: prods.Registry(), Store: b.Store(), Logger: log, Owner: cache.NewOwner(), BusInlineBytes: sf.bus.InlineBytes}
	if sf.bus.URL != "" {
		cluster := sf.bus.Cluster
		if cluster == "" {
			cluster = b.Name()
		}
		oc.bus, err = natsbus.Open(natsbus.Config{URL: sf.bus.URL, Cluster: cluster, Name: opts.Owner, Logger: log,
			CredsFile: sf.bus.CredsFile, TLSCAFile: sf.bus.TLSCAFile, TLSCertFile: sf.bus.TLSCertFile, TLSKeyFile: sf.bus.TLSKeyFile})
		if err != nil {
			oc.close()
			return nil, fmt.Errorf("--bus-url: %w", err)
		}
		opts.Bus = oc.bus
	} else if ob, ok := b.(interface{ OpenBus(*slog.Logger) cache.Bus }); ok && b.Shared() {
		// The store's own bus (PostgreSQL's LISTEN/NOTIFY).
		sb := ob.OpenBus(log)
		opts.Bus, oc.ownBus = sb, sb
	}
	if oc.c, err = cache.New(opts); err != nil {
		oc.close()
		return nil, err
	}
	return oc, nil
}

// announced refuses to write to a shared store with no bus: the running
// gateways would keep serving their in-process copies.
func (o *offlineCache) announced(name string, stderr io.Writer) bool {
	if o.bus == nil && o.ownBus == nil && o.backend.Shared() {
		fmt.Fprintf(stderr, "kck %s: the gateways sharing this store hear of changes over the cluster's change bus: set --bus-url (KCK_BUS_URL)\n", name)
		return false
	}
	return true
}

func (o *offlineCache) close() {
	if o.c != nil {
		_ = o.c.Close()
	}
	if o.bus != nil {
		// Announcements wait in the client's buffer: send them first.
		_ = o.bus.Close()
	}
	if c, ok := o.ownBus.(interface{ Close() error }); ok {
		_ = c.Close() // sends what it queued
	}
	o.prods.Close()
	_ = o.backend.Close()
}
