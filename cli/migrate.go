package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// migrateOptions are kck migrate's flags.
type migrateOptions struct {
	cfg        cassandra.Config
	store      string
	pgStore    postgres.Config
	rf         int
	dcs, pgURL string
	sqlDir     string
	timeout    time.Duration
}

func migrateFlags(f *flags) *migrateOptions {
	o := &migrateOptions{}
	f.str(&o.store, "store", "KCK_STORE", app.Defaults().Store, "with postgres: create the postgres store's schema and tables (in --store-postgres-url, default --postgres-url)")
	storePostgresFlags(f, &o.pgStore)
	cassandraFlags(f, &o.cfg)
	f.int(&o.rf, "replication-factor", "KCK_CASSANDRA_REPLICATION_FACTOR", 1, "SimpleStrategy replication factor of a new keyspace")
	f.str(&o.dcs, "replication", "KCK_CASSANDRA_REPLICATION", "", "NetworkTopologyStrategy instead: dc1:3,dc2:3")
	postgresFlag(f, &o.pgURL, "install the change triggers of the SQL products in this database")
	sqlDirFlag(f, &o.sqlDir)
	f.dur(&o.timeout, "timeout", "", time.Minute, "give up after")
	return o
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("migrate", stderr)
	o := migrateFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck migrate [flags]\n\nCreates the Cassandra keyspace and tables when missing (with --cassandra-hosts),\nmigrates the PostgreSQL store's schema (with --store postgres), and installs the\nchange triggers on the source tables of the SQL products (with --postgres-url).\nSafe to run again, and from several machines at once.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.parse(args); err != nil {
		return parseCode(err)
	}
	cfg, rf, dcs, pgURL, sqlDir, timeout := o.cfg, &o.rf, &o.dcs, &o.pgURL, &o.sqlDir, &o.timeout
	r := cassandra.Replication{Factor: *rf}
	if *dcs != "" {
		r.PerDC = map[string]int{}
		for part := range strings.SplitSeq(*dcs, ",") {
			var dc string
			var n int
			name, num, ok := strings.Cut(strings.TrimSpace(part), ":")
			if _, err := fmt.Sscan(num, &n); !ok || err != nil || name == "" || n < 1 {
				fmt.Fprintf(stderr, "kck migrate: bad --replication entry %q (want dc:factor)\n", part)
				return 2
			}
			dc = name
			r.PerDC[dc] = n
		}
	}
	pgStore := o.store == backend.Postgres
	if pgStore && o.pgStore.URL == "" {
		o.pgStore.URL = *pgURL
	}
	switch {
	case pgStore:
		if err := (backend.Config{Kind: backend.Postgres, Postgres: o.pgStore}).Check(); err != nil {
			fmt.Fprintln(stderr, "kck migrate:", err)
			return 2
		}
	case o.store != backend.Embedded && o.store != backend.Cassandra:
		fmt.Fprintf(stderr, "kck migrate: --store must be embedded, cassandra or postgres, not %q\n", o.store)
		return 2
	}
	if len(cfg.Hosts) == 0 && *pgURL == "" && !pgStore {
		fmt.Fprintln(stderr, "kck migrate: nothing to migrate: set KCK_CASSANDRA_HOSTS, --store postgres and/or KCK_POSTGRES_URL")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if len(cfg.Hosts) > 0 {
		if err := cassandra.Migrate(ctx, cfg, r); err != nil {
			fmt.Fprintln(stderr, "kck migrate:", err)
			return 1
		}
		fmt.Fprintf(stdout, "keyspace %s is up to date on %s\n", cfg.WithDefaults().Keyspace, strings.Join(cfg.Hosts, ","))
	}
	if pgStore {
		from, to, err := postgres.Migrate(ctx, o.pgStore)
		if err != nil {
			fmt.Fprintln(stderr, "kck migrate:", err)
			return 1
		}
		if from == to {
			fmt.Fprintf(stdout, "postgres store: schema %s is up to date (migration %d)\n", o.pgStore.WithDefaults().Schema, to)
		} else {
			fmt.Fprintf(stdout, "postgres store: schema %s migrated from %d to %d\n", o.pgStore.WithDefaults().Schema, from, to)
		}
	}
	if *pgURL != "" {
		if err := migratePostgres(ctx, *pgURL, *sqlDir); err != nil {
			fmt.Fprintln(stderr, "kck migrate:", err)
			return 1
		}
		fmt.Fprintln(stdout, "change triggers installed")
	}
	return 0
}

func migratePostgres(ctx context.Context, url, dir string) error {
	var fsys fs.FS = demo.SQL()
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	decls, err := sqlproduct.LoadFS(fsys)
	if err != nil {
		return err
	}
	pool, err := source.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return source.Migrate(ctx, pool, decls.Tables())
}
