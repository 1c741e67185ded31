package postgres_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// Sweep deletes expired entries, old tombstones and run-out leases in
// bounded batches, walking the keys across sweeps, and leaves everything
// live alone.
func TestSweep(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	cfg.SweepBatch, cfg.SweepMaxRows, cfg.TombstoneTTL = 7, 30, time.Millisecond
	s := open(t, cfg)
	// 50 live entries, 40 expired ones and 10 old tombstones, interleaved
	// in key order; 12 leases that ran out, 3 that run.
	exec(t, s, `INSERT INTO SCHEMA.cache_entries (key, version, computed_at, expires_at, codec, value)
		SELECT 'k/' || lpad(i::text, 3, '0'), i, now(),
			CASE WHEN i % 5 IN (1, 2) THEN now() - interval '1 minute' WHEN i % 5 = 3 THEN now() + interval '1 hour' END,
			0, CASE WHEN i % 10 = 4 THEN NULL ELSE '1'::bytea END
		FROM generate_series(1, 100) i`)
	exec(t, s, `UPDATE SCHEMA.cache_entries SET expires_at = now() - interval '1 second' WHERE value IS NULL`)
	exec(t, s, `INSERT INTO SCHEMA.leases (name, owner, expires_at)
		SELECT 'dead/' || i, 'gone', now() - interval '1 second' FROM generate_series(1, 12) i
		UNION ALL SELECT 'live/' || i, 'here', now() + interval '1 hour' FROM generate_series(1, 3) i`)
	count := func(table, where string) int {
		var n int
		require.NoError(t, s.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+pgx.Identifier{cfg.Schema, table}.Sanitize()+` WHERE `+where).Scan(&n))
		return n
	}
	require.Equal(t, 10, count("cache_entries", "value IS NULL"))

	var total postgres.Swept
	for sweeps := 1; ; sweeps++ {
		sw, err := s.Sweep(ctx(t))
		require.NoError(t, err)
		require.LessOrEqual(t, sw.Examined, 30, "a sweep examines at most SweepMaxRows rows")
		total.Examined += sw.Examined
		total.Entries += sw.Entries
		total.Leases += sw.Leases
		if sw.Wrapped {
			require.Equal(t, 4, sweeps, "100 keys, 30 a sweep")
			break
		}
	}
	require.Equal(t, 50, total.Entries, "40 expired and 10 tombstones")
	require.Equal(t, 12, total.Leases)
	require.Equal(t, 50, count("cache_entries", "true"))
	require.Zero(t, count("cache_entries", "value IS NULL OR expires_at <= now()"))
	require.Equal(t, 3, count("leases", "true"))

	// A value written after the walk passed is swept on the next walk, and a
	// deletion's tombstone once TombstoneTTL has passed.
	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "a/first", Value: []byte(`1`), Version: 1, ComputedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	require.NoError(t, s.Delete(ctx(t), "k/003", 1<<40))
	exec(t, s, `UPDATE SCHEMA.cache_entries SET expires_at = now() - interval '1 second' WHERE key = 'a/first'`)
	require.Eventually(t, func() bool { return count("cache_entries", "key = 'k/003' AND expires_at <= now()") == 1 }, 10*time.Second, 5*time.Millisecond)
	gone := 0
	for range 2 {
		sw, err := s.Sweep(ctx(t))
		require.NoError(t, err)
		gone += sw.Entries
	}
	require.Equal(t, 2, gone)
	require.Zero(t, count("cache_entries", "key IN ('a/first', 'k/003')"))
}
