package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

type missResult struct {
	store              string
	n                  int
	rawP50, rawP99     time.Duration
	firstP50, firstP99 time.Duration
}

// missPath measures, on each store, n first reads of title_list (cache.Get
// of a key no one has read: the store read that misses, the lease, the
// primer's query, the value's encoding and the store write) against the
// primer's own SQL run through the same pgx pool (the query and reading every
// row), one of each per key, in turn.
func missPath(ctx context.Context, dbURL, cassHosts, keyspace string, n int, wants func(string) bool) ([]missResult, error) {
	pool, err := source.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	decls, err := sqlproduct.LoadFS(demo.SQL())
	if err != nil {
		return nil, err
	}
	var raw *sqlproduct.Product
	for _, p := range decls.Products {
		if p.Name == "title_list" {
			raw = p
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("the demo has no title_list")
	}
	n = min(n, authors) // each key read once
	var out []missResult
	if wants("kck-embedded") {
		dir, err := os.MkdirTemp("", "kck-peers-miss-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		s, err := bolt.Open(dir, bolt.Options{})
		if err != nil {
			return nil, err
		}
		r, err := firstReads(ctx, "embedded", s, pool, decls, raw, n, false)
		_ = s.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if wants("kck-postgres") {
		// The store in the demo database's kck schema, as the kck-postgres
		// gateway has it.
		cfg := postgres.Config{URL: dbURL}
		if _, _, err := postgres.Migrate(ctx, cfg); err != nil {
			return nil, err
		}
		s, err := postgres.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		r, err := firstReads(ctx, "PostgreSQL", s, pool, decls, raw, n, true)
		_ = s.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if wants("kck-cassandra") && cassHosts != "" {
		cfg := cassandra.Config{Hosts: splitHosts(cassHosts), Keyspace: keyspace}
		if err := migrate(ctx, cassHosts, keyspace); err != nil {
			return nil, err
		}
		s, err := cassandra.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		r, err := firstReads(ctx, "Cassandra", s, pool, decls, raw, n, true)
		s.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func firstReads(ctx context.Context, name string, store cache.Store, pool *pgxpool.Pool, decls *sqlproduct.Declarations, raw *sqlproduct.Product, n int, shared bool) (missResult, error) {
	reg := primers.NewRegistry()
	if _, err := sqlproduct.Register(reg, pool, decls, nil); err != nil {
		return missResult{}, err
	}
	c, err := cache.New(cache.Options{Registry: reg, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return missResult{}, err
	}
	defer c.Close()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("title_list/%d", keyAuthor(i, authors))
	}
	// On a store that outlives the run (Cassandra, PostgreSQL), earlier runs' values
	// are removed first: each read below is then a miss.
	if shared {
		for _, k := range keys {
			if err := c.Invalidate(ctx, k); err != nil {
				return missResult{}, err
			}
		}
	}
	rawRead := func(author int) error {
		rows, err := pool.Query(ctx, raw.SQL, author)
		if err != nil {
			return err
		}
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		return rows.Err()
	}
	// One of each first, untimed: the pool's connections and prepared statements.
	if err := rawRead(1); err != nil {
		return missResult{}, err
	}
	rawLat, firstLat := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i, k := range keys {
		t0 := time.Now()
		if err := rawRead(keyAuthor(i, authors)); err != nil {
			return missResult{}, err
		}
		rawLat = append(rawLat, time.Since(t0))
		t0 = time.Now()
		r, err := c.Get(ctx, k)
		if err != nil {
			return missResult{}, fmt.Errorf("%s: %w", k, err)
		}
		firstLat = append(firstLat, time.Since(t0))
		if r.Tier != cache.TierComputed {
			return missResult{}, fmt.Errorf("%s: the first read was a %v, not a miss", k, r.Tier)
		}
	}
	slices.Sort(rawLat)
	slices.Sort(firstLat)
	pct := func(l []time.Duration, p float64) time.Duration { return l[int(p*float64(len(l)-1))] }
	return missResult{store: name, n: n,
		rawP50: pct(rawLat, 0.5), rawP99: pct(rawLat, 0.99),
		firstP50: pct(firstLat, 0.5), firstP99: pct(firstLat, 0.99)}, nil
}

func splitHosts(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// migrate creates the keyspace (RF 3) and tables when absent. Schema changes
// time out on a busy cluster, so it tries three times.
func migrate(ctx context.Context, hosts, keyspace string) error {
	cfg := cassandra.Config{Hosts: splitHosts(hosts), Keyspace: keyspace}
	var err error
	for range 3 {
		if err = cassandra.Migrate(ctx, cfg, cassandra.Replication{Factor: 3}); err == nil {
			return nil
		}
		fmt.Fprintln(os.Stderr, "peers: cassandra migrate:", err, "(trying again)")
	}
	return fmt.Errorf("cassandra migrate %s: %w", keyspace, err)
}
