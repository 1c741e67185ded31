package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
)

// storeFlags are the flags of the commands that work on a store offline
// (warm, refresh, queue, dump, load): which store, and where it is. They
// read the same KCK_* variables as kck serve.
type storeFlags struct {
	kind      string
	dataDir   string
	cassandra cassandra.Config
}

func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	s := &storeFlags{cassandra: cassandra.ConfigFromEnv()}
	fs.StringVar(&s.kind, "store", envOr("KCK_STORE", "embedded"), "store: embedded or cassandra (KCK_STORE)")
	fs.StringVar(&s.dataDir, "data-dir", envOr("KCK_DATA_DIR", ".kck-data"), "directory of the embedded store (KCK_DATA_DIR)")
	cassandraFlags(fs, &s.cassandra)
	return s
}

// storeCommand is the flag set of a command that works on a store: the
// store flags, and --help printing doc (the text above the flags).
func storeCommand(name, doc string, stderr io.Writer) (*flag.FlagSet, *storeFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addStoreFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", doc)
		fs.PrintDefaults()
	}
	return fs, sf
}

// parse parses args and checks the store flags. When ok is false the
// command returns code: 0 after --help, 2 for a usage error.
func (s *storeFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if err := s.check(); err != nil {
		fmt.Fprintf(stderr, "kck %s: %v\n", fs.Name(), err)
		return 2, false
	}
	return 0, true
}

// check reports flags no store can be opened with: a usage error (exit 2).
func (s *storeFlags) check() error {
	switch {
	case s.kind != "embedded" && s.kind != "cassandra":
		return fmt.Errorf("--store must be embedded or cassandra, not %q", s.kind)
	case s.kind == "cassandra" && len(s.cassandra.Hosts) == 0:
		return fmt.Errorf("--store cassandra needs --cassandra-hosts or KCK_CASSANDRA_HOSTS")
	}
	return nil
}

// storeUsage is the sentence every such command's --help carries.
const storeUsage = `With the embedded store the gateway must be stopped (it holds the store's
file); with Cassandra it works beside running gateways.`

// open opens the store. The embedded store is given one second: a running
// gateway holds its lock, and saying so beats hanging.
func (s *storeFlags) open(ctx context.Context) (cache.Store, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.kind == "cassandra" {
		return cassandra.Open(ctx, s.cassandra)
	}
	return bolt.Open(s.dataDir, bolt.Options{OpenTimeout: time.Second})
}

// productFlags say which products a command computes, as for kck serve.
type productFlags struct{ postgresURL, sqlDir string }

func addProductFlags(fs *flag.FlagSet) *productFlags {
	p := &productFlags{}
	fs.StringVar(&p.postgresURL, "postgres-url", envOr("KCK_POSTGRES_URL", ""), "compute the SQL products from this PostgreSQL database (KCK_POSTGRES_URL)")
	fs.StringVar(&p.sqlDir, "sql-dir", envOr("KCK_SQL_DIR", ""), "folder of SQL product declarations; default: the demo's (KCK_SQL_DIR)")
	return p
}

// offlineCache is what kck warm and kck refresh compute with: the store,
// the gateway's products and a cache over them, as a gateway has, without
// serving.
type offlineCache struct {
	c     *cache.Cache
	store cache.Store
	prods *products
}

func openOfflineCache(ctx context.Context, sf *storeFlags, pf *productFlags, log *slog.Logger) (*offlineCache, error) {
	store, err := sf.open(ctx)
	if err != nil {
		return nil, err
	}
	prods, err := loadProducts(ctx, serveConfig{Store: sf.kind, DataDir: sf.dataDir, PostgresURL: pf.postgresURL, SQLDir: pf.sqlDir}, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	c, err := cache.New(cache.Options{Registry: prods.reg, Store: store, Logger: log})
	if err != nil {
		prods.close()
		_ = store.Close()
		return nil, err
	}
	return &offlineCache{c: c, store: store, prods: prods}, nil
}

func (o *offlineCache) close() {
	_ = o.c.Close()
	o.prods.close()
	_ = o.store.Close()
}
