// Command pgsize measures how large the PostgreSQL store's tables grow under
// repeated refreshes: N refreshes of K keys through a cache on the store (each
// a compute lease taken and released and a new version written over the
// row), optionally through the refresh queue (each key enqueued, claimed and
// marked done), with autovacuum as the server has it. Every -every
// refreshes it prints the tables' heap, TOAST and index sizes, the share of
// heap-only (HOT) updates, the dead rows and the autovacuum runs so far, and
// runs the store's sweep as the cluster job would.
//
//	pgsize [-postgres-url URL] [-keys 1000] [-refreshes 1000000] [-concurrency 8] [-value-bytes 1024] [-queue] [-fillfactor 70]
//
// The store lives in a schema of its own (kck_pgsize_...), dropped at the
// end unless -keep.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
)

type config struct {
	url                           string
	keys, refreshes, conc, every  int
	valueBytes, fillfactor, batch int
	useQueue, keep                bool
}

func main() {
	var c config
	flag.StringVar(&c.url, "postgres-url", os.Getenv("KCK_POSTGRES_URL"), "the database")
	flag.IntVar(&c.keys, "keys", 1000, "distinct keys refreshed")
	flag.IntVar(&c.refreshes, "refreshes", 1_000_000, "refreshes in all")
	flag.IntVar(&c.conc, "concurrency", 8, "refreshes at once")
	flag.IntVar(&c.every, "every", 100_000, "print a row (and sweep) every this many refreshes")
	flag.IntVar(&c.valueBytes, "value-bytes", 1024, "size of a value's JSON")
	flag.IntVar(&c.fillfactor, "fillfactor", 0, "set cache_entries' fillfactor first (0: the migration's, 70)")
	flag.IntVar(&c.batch, "batch", 20, "with -queue: keys enqueued and claimed at a time")
	flag.BoolVar(&c.useQueue, "queue", false, "refresh through the refresh queue: enqueue, claim, refresh, done")
	flag.BoolVar(&c.keep, "keep", false, "keep the schema afterwards")
	flag.Parse()
	if c.url == "" {
		fmt.Fprintln(os.Stderr, "pgsize: set -postgres-url or KCK_POSTGRES_URL")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "pgsize:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, c config) error {
	var b [4]byte
	_, _ = rand.Read(b[:])
	pc := postgres.Config{URL: c.url, Schema: "kck_pgsize_" + hex.EncodeToString(b[:])}
	if _, _, err := postgres.Migrate(ctx, pc); err != nil {
		return err
	}
	if !c.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = postgres.DropSchema(dctx, pc)
		}()
	}
	s, err := postgres.Open(ctx, pc)
	if err != nil {
		return err
	}
	defer s.Close()
	schema := pgx.Identifier{pc.Schema}.Sanitize()
	if c.fillfactor > 0 {
		if _, err := s.Pool().Exec(ctx, fmt.Sprintf(`ALTER TABLE %s.cache_entries SET (fillfactor = %d)`, schema, c.fillfactor)); err != nil {
			return err
		}
	}
	var settings []string
	for _, name := range []string{"autovacuum", "autovacuum_naptime", "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_threshold",
		"autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_cost_limit", "autovacuum_vacuum_cost_delay", "synchronous_commit", "fsync"} {
		var v string
		if err := s.Pool().QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return err
		}
		settings = append(settings, name+"="+v)
	}
	var version string
	_ = s.Pool().QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Fprintf(w, "pgsize: PostgreSQL %s, %d keys, %d refreshes, %d at once, values of %d bytes, queue %v, fillfactor %s\n%s\n\n",
		version, c.keys, c.refreshes, c.conc, c.valueBytes, c.useQueue, fillName(c.fillfactor), strings.Join(settings, " "))

	var version64 atomic.Int64
	reg := primers.NewRegistry()
	pad := strings.Repeat("lorem ipsum dolor sit amet ", c.valueBytes/27+1)
	err = reg.Register(primers.Product{
		Name:   "p",
		Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, n int64) (map[string]any, error) {
			v := version64.Add(1)
			// About valueBytes of JSON that changes with every run.
			return map[string]any{"n": n, "run": v, "text": pad[:max(0, c.valueBytes-60)]}, nil
		}),
	})
	if err != nil {
		return err
	}
	c0, err := cache.New(cache.Options{Registry: reg, Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer c0.Close()
	var q *postgres.Queue
	if c.useQueue {
		if q, err = s.Queue(queue.Config{}); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "| refreshes | seconds | refreshes/s | cache_entries heap | TOAST | indexes | HOT updates | dead rows | autovacuums | refresh_queue: all, dead rows, autovacuums | leases: all, dead rows, autovacuums | swept |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	start, lastAt, lastN := time.Now(), time.Now(), 0
	var done atomic.Int64
	report := func(n int, swept postgres.Swept) error {
		st, err := stats(ctx, s, pc.Schema)
		if err != nil {
			return err
		}
		rate := float64(n-lastN) / time.Since(lastAt).Seconds()
		lastAt, lastN = time.Now(), n
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %s | %s | %s | %.1f%% | %d | %d | %s, %d, %d | %s, %d, %d | %d entries, %d leases, %d queue rows |\n",
			n, time.Since(start).Seconds(), rate, mib(st.heap), mib(st.toast), mib(st.index), st.hotPct(), st.dead, st.autovacuums,
			mib(st.queueTotal), st.queueDead, st.queueVacuums, mib(st.leasesTotal), st.leasesDead, st.leasesVacuums, swept.Entries, swept.Leases, swept.QueueRows)
		return nil
	}
	if err := report(0, postgres.Swept{}); err != nil {
		return err
	}
	for n := 0; n < c.refreshes; {
		chunk := min(c.every, c.refreshes-n)
		if err := refreshMany(ctx, c0, q, c, n, chunk, &done); err != nil {
			return err
		}
		n += chunk
		sw, err := s.Sweep(ctx)
		if err != nil {
			return err
		}
		if err := report(n, sw); err != nil {
			return err
		}
	}
	if _, err := s.Pool().Exec(ctx, fmt.Sprintf("VACUUM %s.cache_entries, %s.refresh_queue, %s.leases", schema, schema, schema)); err != nil {
		return err
	}
	st, err := stats(ctx, s, pc.Schema)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nafter a plain VACUUM: cache_entries heap %s, TOAST %s, indexes %s; refresh_queue %s; leases %s\n",
		mib(st.heap), mib(st.toast), mib(st.index), mib(st.queueTotal), mib(st.leasesTotal))
	fmt.Fprintf(w, "one row's value: %d bytes of JSON; store ops: %+v\n", c.valueBytes, s.Ops())
	return nil
}

func fillName(f int) string {
	if f == 0 {
		return "70 (the migration's)"
	}
	return fmt.Sprint(f)
}

// refreshMany runs n refreshes, numbered from first, c.conc at once. Worker
// g refreshes the keys g, g+conc, ... so that no two run one key at once
// (they would share one run).
func refreshMany(ctx context.Context, c0 *cache.Cache, q *postgres.Queue, c config, first, n int, done *atomic.Int64) error {
	var wg sync.WaitGroup
	errc := make(chan error, c.conc)
	for g := range c.conc {
		wg.Go(func() {
			var mine []string
			for i := first + g; i < first+n; i += c.conc {
				mine = append(mine, fmt.Sprintf("p/%d", i%c.keys))
			}
			var err error
			if q == nil {
				for _, k := range mine {
					if _, err = c0.Refresh(ctx, k); err != nil {
						break
					}
				}
			} else {
				err = viaQueue(ctx, c0, q, fmt.Sprintf("w%d", g), mine, c.batch)
			}
			if err != nil {
				errc <- err
			}
			done.Add(int64(len(mine)))
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// viaQueue enqueues keys a batch at a time, claims them and refreshes each
// before marking it done, as a gateway's worker does.
func viaQueue(ctx context.Context, c0 *cache.Cache, q *postgres.Queue, worker string, keys []string, batch int) error {
	for len(keys) > 0 {
		// Distinct keys per batch: a key enqueued twice is one row.
		seen := map[string]bool{}
		var b []string
		for len(keys) > 0 && len(b) < batch && !seen[keys[0]] {
			seen[keys[0]] = true
			b, keys = append(b, keys[0]), keys[1:]
		}
		if err := q.EnqueueMany(ctx, b, time.Now()); err != nil {
			return err
		}
		left := len(b)
		for left > 0 {
			items, err := q.Claim(ctx, worker, batch, time.Minute)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				// Another worker holds rows of the same keys (a key can sit in
				// two workers' lists); they finish them.
				break
			}
			for _, it := range items {
				if _, err := c0.Refresh(ctx, it.Key); err != nil {
					return err
				}
				if err := q.Done(ctx, worker, it.Key, it.Version); err != nil && !errors.Is(err, queue.ErrNotClaimed) {
					return err
				}
				left--
			}
		}
	}
	return nil
}

type tableStats struct {
	heap, toast, index, queueTotal, leasesTotal int64
	upd, hot, dead, autovacuums                 int64
	// Of refresh_queue and leases: dead rows, autovacuum runs.
	queueDead, queueVacuums, leasesDead, leasesVacuums int64
}

func (t tableStats) hotPct() float64 {
	if t.upd == 0 {
		return 0
	}
	return 100 * float64(t.hot) / float64(t.upd)
}

func stats(ctx context.Context, s *postgres.Store, schema string) (tableStats, error) {
	var t tableStats
	entries := pgx.Identifier{schema, "cache_entries"}.Sanitize()
	err := s.Pool().QueryRow(ctx, `SELECT pg_relation_size(c.oid), coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid),
			pg_total_relation_size($2::regclass), pg_total_relation_size($3::regclass),
			st.n_tup_upd, st.n_tup_hot_upd, st.n_dead_tup, st.autovacuum_count
		FROM pg_class c JOIN pg_stat_user_tables st ON st.relid = c.oid WHERE c.oid = $1::regclass`,
		entries, pgx.Identifier{schema, "refresh_queue"}.Sanitize(), pgx.Identifier{schema, "leases"}.Sanitize()).
		Scan(&t.heap, &t.toast, &t.index, &t.queueTotal, &t.leasesTotal, &t.upd, &t.hot, &t.dead, &t.autovacuums)
	if err != nil {
		return t, err
	}
	const other = `SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables WHERE relid = $1::regclass`
	if err := s.Pool().QueryRow(ctx, other, pgx.Identifier{schema, "refresh_queue"}.Sanitize()).Scan(&t.queueDead, &t.queueVacuums); err != nil {
		return t, err
	}
	err = s.Pool().QueryRow(ctx, other, pgx.Identifier{schema, "leases"}.Sanitize()).Scan(&t.leasesDead, &t.leasesVacuums)
	return t, err
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(b)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
