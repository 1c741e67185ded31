package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// migrateOptions are kck migrate's flags.
type migrateOptions struct {
	cfg        cassandra.Config
	rf         int
	dcs, pgURL string
	sqlDir     string
	timeout    time.Duration
}

func migrateFlags(f *flags) *migrateOptions {
	o := &migrateOptions{}
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
		fmt.Fprintln(stderr, "Usage: kck migrate [flags]\n\nCreates the Cassandra keyspace and tables when missing (with --cassandra-hosts),\nand installs the change triggers on the source tables of the SQL products (with\n--postgres-url). Safe to run again.\n\nFlags:")
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
	if len(cfg.Hosts) == 0 && *pgURL == "" {
		fmt.Fprintln(stderr, "kck migrate: nothing to migrate: set KCK_CASSANDRA_HOSTS and/or KCK_POSTGRES_URL")
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
