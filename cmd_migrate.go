package main

import (
	"context"
	"errors"
	"flag"
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

// hostList is a comma-separated flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(s string) error {
	*h = nil
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*h = append(*h, p)
		}
	}
	return nil
}

// cassandraFlags adds the Cassandra connection flags over the values read
// from the environment.
func cassandraFlags(fs *flag.FlagSet, c *cassandra.Config) {
	fs.Var((*hostList)(&c.Hosts), "cassandra-hosts", "Cassandra contact points, comma-separated (KCK_CASSANDRA_HOSTS)")
	fs.StringVar(&c.Keyspace, "cassandra-keyspace", envOr("KCK_CASSANDRA_KEYSPACE", "kck"), "keyspace (KCK_CASSANDRA_KEYSPACE)")
	fs.StringVar(&c.Consistency, "cassandra-consistency", envOr("KCK_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM"), "consistency of reads and writes (KCK_CASSANDRA_CONSISTENCY)")
	fs.StringVar(&c.LocalDC, "cassandra-local-dc", c.LocalDC, "local datacenter: route requests there (KCK_CASSANDRA_LOCAL_DC)")
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := cassandra.ConfigFromEnv()
	cassandraFlags(fs, &cfg)
	rf := fs.Int("replication-factor", envInt("KCK_CASSANDRA_REPLICATION_FACTOR", 1), "SimpleStrategy replication factor of a new keyspace (KCK_CASSANDRA_REPLICATION_FACTOR)")
	dcs := fs.String("replication", envOr("KCK_CASSANDRA_REPLICATION", ""), "NetworkTopologyStrategy instead: dc1:3,dc2:3 (KCK_CASSANDRA_REPLICATION)")
	pgURL := fs.String("postgres-url", envOr("KCK_POSTGRES_URL", ""), "install the change triggers of the SQL products in this database (KCK_POSTGRES_URL)")
	sqlDir := fs.String("sql-dir", envOr("KCK_SQL_DIR", ""), "folder of SQL product declarations; default: the demo's (KCK_SQL_DIR)")
	timeout := fs.Duration("timeout", time.Minute, "give up after")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck migrate [flags]\n\nCreates the Cassandra keyspace and tables when missing (with --cassandra-hosts),\nand installs the change triggers on the source tables of the SQL products (with\n--postgres-url). Safe to run again.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
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
