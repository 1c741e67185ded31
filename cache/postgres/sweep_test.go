package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/queue"
)

// Sweep deletes expired entries, old tombstones, leases that ran out and
// finished queue rows in bounded batches, walking each table across
// sweeps, and leaves everything live alone.
func TestSweep(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	cfg.SweepBatch, cfg.SweepMaxRows, cfg.TombstoneTTL, cfg.KeepDone = 7, 30, time.Millisecond, time.Millisecond
	s := open(t, cfg)
	// 50 live entries, 40 expired ones and 10 old tombstones, interleaved
	// in key order; 12 leases that ran out, 3 that run, 1 released.
	exec(t, s, `INSERT INTO SCHEMA.cache_entries (key, version, computed_at, expires_at, codec, value)
		SELECT 'k/' || lpad(i::text, 3, '0'), i, now(),
			CASE WHEN i % 5 IN (1, 2) THEN now() - interval '1 minute' WHEN i % 5 = 3 THEN now() + interval '1 hour' END,
			0, CASE WHEN i % 10 = 4 THEN NULL ELSE '1'::bytea END
		FROM generate_series(1, 100) i`)
	exec(t, s, `UPDATE SCHEMA.cache_entries SET expires_at = now() - interval '1 second' WHERE value IS NULL`)
	exec(t, s, `INSERT INTO SCHEMA.leases (name, owner, expires_at)
		SELECT 'dead/' || i, 'gone', now() - interval '1 second' FROM generate_series(1, 12) i
		UNION ALL SELECT 'live/' || i, 'here', now() + interval '1 hour' FROM generate_series(1, 3) i`)
	got, err := s.Acquire(ctx(t), "released", "me", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	require.NoError(t, s.Release(ctx(t), "released", "me"))
	// Two queues: 10 keys each, 6 of them done (finished rows), 4 queued.
	for _, name := range []string{"a", "b"} {
		q, err := s.QueueNamed(name, queue.Config{})
		require.NoError(t, err)
		var keys []string
		for i := range 10 {
			keys = append(keys, fmt.Sprintf("q/%d", i))
		}
		require.NoError(t, q.EnqueueMany(ctx(t), keys, time.Now()))
		items, err := q.Claim(ctx(t), "w", 6, time.Minute)
		require.NoError(t, err)
		require.Len(t, items, 6)
		for _, it := range items {
			require.NoError(t, q.Done(ctx(t), "w", it.Key, it.Version))
		}
	}
	count := func(table, where string) int {
		var n int
		require.NoError(t, s.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+pgx.Identifier{cfg.Schema, table}.Sanitize()+` WHERE `+where).Scan(&n))
		return n
	}
	require.Equal(t, 10, count("cache_entries", "value IS NULL"))
	require.Equal(t, 12, count("refresh_queue", "done_at IS NOT NULL"), "done rows are kept finished")
	require.Equal(t, "", func() string {
		var owner string
		require.NoError(t, s.Pool().QueryRow(ctx(t), `SELECT owner FROM `+pgx.Identifier{cfg.Schema, "leases"}.Sanitize()+` WHERE name = 'released'`).Scan(&owner))
		return owner
	}(), "a released lease is kept, run out and with no owner")
	require.Eventually(t, func() bool { return count("refresh_queue", "done_at < now() - interval '1 millisecond'") == 12 }, 10*time.Second, 5*time.Millisecond)

	var total postgres.Swept
	for sweeps := 1; ; sweeps++ {
		sw, err := s.Sweep(ctx(t))
		require.NoError(t, err)
		require.LessOrEqual(t, sw.Examined, 3*30, "a sweep examines at most SweepMaxRows rows of each table")
		total.Entries += sw.Entries
		total.Leases += sw.Leases
		total.QueueRows += sw.QueueRows
		if sw.Wrapped {
			require.Equal(t, 4, sweeps, "100 entries, 30 a sweep; the smaller tables are walked whole every sweep")
			break
		}
		require.Less(t, sweeps, 4)
	}
	require.Equal(t, 50, total.Entries, "40 expired and 10 tombstones")
	require.Equal(t, 13, total.Leases, "12 run out and 1 released")
	require.Equal(t, 12, total.QueueRows)
	require.Equal(t, 50, count("cache_entries", "true"))
	require.Zero(t, count("cache_entries", "value IS NULL OR expires_at <= now()"))
	require.Equal(t, 3, count("leases", "true"))
	require.Equal(t, 8, count("refresh_queue", "done_at IS NULL"), "queued rows stay")

	// A value written after the walk passed is swept on the next walk, and a
	// deletion's tombstone once TombstoneTTL has passed.
	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "a/first", Value: []byte(`1`), Version: 1, ComputedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	require.NoError(t, s.Delete(ctx(t), "k/003", 1<<40))
	exec(t, s, `UPDATE SCHEMA.cache_entries SET expires_at = now() - interval '1 second' WHERE key = 'a/first'`)
	require.Eventually(t, func() bool { return count("cache_entries", "key = 'k/003' AND expires_at <= now()") == 1 }, 10*time.Second, 5*time.Millisecond)
	sw, err := s.Sweep(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 2, sw.Entries)
	require.Zero(t, count("cache_entries", "key IN ('a/first', 'k/003')"))
}

// A finished queue row is no row to the queue (Get, Stats, Claim), and a
// new request for its key reuses it as a fresh row.
func TestQueueReusesFinishedRows(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	q, err := s.Queue(queue.Config{})
	require.NoError(t, err)
	require.NoError(t, q.Enqueue(ctx(t), "a/1", time.Now()))
	items, err := q.Claim(ctx(t), "w", 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, q.Release(ctx(t), "w", "a/1", items[0].Version, fmt.Errorf("boom")))
	require.NoError(t, q.Remove(ctx(t), "a/1"))
	_, err = q.Get(ctx(t), "a/1")
	require.ErrorIs(t, err, queue.ErrNotFound)
	st, err := q.Stats(ctx(t))
	require.NoError(t, err)
	require.Zero(t, st.Depth)
	require.NoError(t, q.EnqueueMany(ctx(t), []string{"a/1", "a/2"}, time.Now()))
	it, err := q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.EqualValues(t, 1, it.Requests)
	require.Zero(t, it.Attempts, "a fresh start: the finished row's attempts are gone")
	require.Empty(t, it.LastError)
	var rows int
	require.NoError(t, s.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+pgx.Identifier{s.Config().Schema, "refresh_queue"}.Sanitize()).Scan(&rows))
	require.Equal(t, 2, rows, "one row per key, reused")
}
