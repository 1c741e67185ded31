// Command warmrate measures boot warming and bulk refresh at scale: keys per
// second for N keys on the embedded store, on PostgreSQL and on Cassandra, and where the
// time per key goes (store calls per key, by operation, with their mean
// latency).
//
//	warmrate [-stores embedded,postgres,cassandra] [-keys 10000,100000] [-concurrency 32]
//
// For each store and key count it warms N keys that no gateway has computed
// (cold: every key is read, computed under its bucket's lease and stored),
// then warms them again in a fresh cache (a restart: every key is read from
// the store), then refreshes every key through scheduler.RefreshKeys (a
// periodic refresh of the product). The primer is a cheap function returning
// a value of about -value-bytes, so the figures are the cache's and the
// store's, not a database's. Cassandra comes from KCK_CASSANDRA_HOSTS, in a
// keyspace of its own that is dropped afterwards; PostgreSQL from
// KCK_POSTGRES_URL, in a schema of its own, dropped afterwards.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	stores := flag.String("stores", "embedded,cassandra", "stores to measure, comma-separated: embedded, postgres, cassandra")
	keys := flag.String("keys", "10000,100000", "key counts, comma-separated")
	conc := flag.Int("concurrency", 0, "warm concurrency (0: cache.WarmOptions' default)")
	refreshConc := flag.Int("refresh-concurrency", 0, "refresh concurrency (0: scheduler.Options' default)")
	valueBytes := flag.Int("value-bytes", 1024, "size of a product's encoded value")
	noRefresh := flag.Bool("no-refresh", false, "skip the refresh phase (warming only)")
	flag.Parse()
	cfg := Config{Concurrency: *conc, RefreshConcurrency: *refreshConc, ValueBytes: *valueBytes, NoRefresh: *noRefresh}
	for s := range strings.SplitSeq(*stores, ",") {
		cfg.Stores = append(cfg.Stores, strings.TrimSpace(s))
	}
	for k := range strings.SplitSeq(*keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(k))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "warmrate: bad key count %q\n", k)
			os.Exit(2)
		}
		cfg.Keys = append(cfg.Keys, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	if err := Run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "warmrate:", err)
		os.Exit(1)
	}
}

// Config is what Run measures.
type Config struct {
	Stores      []string // "embedded", "postgres", "cassandra"
	Keys        []int
	Concurrency int
	// RefreshConcurrency is scheduler.Options.Concurrency (0: its default).
	RefreshConcurrency int
	ValueBytes         int
	// NoRefresh skips the refresh phase.
	NoRefresh bool
	// CassandraHosts overrides KCK_CASSANDRA_HOSTS (tests).
	CassandraHosts []string
	// PostgresURL overrides KCK_POSTGRES_URL (tests).
	PostgresURL string
	// Log, when set, receives progress lines.
	Log io.Writer
}
