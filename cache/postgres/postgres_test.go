package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/queue/queuetest"
)

func ctx(t *testing.T) context.Context { return t.Context() }

func open(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// exec runs raw SQL on the store's database, in its schema.
func exec(t *testing.T, s *postgres.Store, sql string, args ...any) {
	t.Helper()
	sql = strings.ReplaceAll(sql, "SCHEMA.", pgx.Identifier{s.Config().Schema}.Sanitize()+".")
	_, err := s.Pool().Exec(ctx(t), sql, args...)
	require.NoError(t, err, sql)
}

func TestContract(t *testing.T) {
	t.Parallel()
	cachetest.Run(t, func(t *testing.T) cache.Store { return pgstoretest.Open(t) })
}

func TestQueueContract(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T, cfg queue.Config) queue.Store {
		q, err := pgstoretest.Open(t).Queue(cfg)
		require.NoError(t, err)
		return q
	})
}

// Two gateways write one key with different versions in both orders; both
// read the higher version.
func TestWritersConvergeOnHighestVersion(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	a, b := open(t, cfg), open(t, cfg)
	for i := range 20 {
		key := fmt.Sprintf("conv/%d", i)
		lo := cache.Entry{Key: key, Value: []byte(`"lo"`), Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}
		hi := lo
		hi.Value, hi.Version = []byte(`"hi"`), lo.Version+uint64(1+rand.IntN(1000))
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		var wg sync.WaitGroup
		wg.Go(func() { assert.NoError(t, first.Put(ctx(t), lo)) })
		wg.Go(func() { assert.NoError(t, second.Put(ctx(t), hi)) })
		wg.Wait()
		for _, s := range []*postgres.Store{a, b} {
			got, err := s.Get(ctx(t), key)
			require.NoError(t, err)
			assert.Equal(t, hi.Version, got.Version)
			assert.Equal(t, `"hi"`, string(got.Value))
		}
	}
}

// A value over MaxValueBytes is refused, naming the limit, and the stored
// value stays; a value of exactly the limit is stored whole.
func TestValueTooLarge(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	cfg.MaxValueBytes = 4096
	s := open(t, cfg)
	exact := cache.Entry{Key: "big/1", Value: []byte(`"` + strings.Repeat("x", 4094) + `"`), Version: 1, ComputedAt: time.Now()}
	require.NoError(t, s.Put(ctx(t), exact))
	over := exact
	over.Value, over.Version = []byte(`"`+strings.Repeat("y", 4095)+`"`), 2
	err := s.Put(ctx(t), over)
	require.ErrorIs(t, err, postgres.ErrValueTooLarge)
	require.ErrorContains(t, err, "4097 bytes, over the limit of 4096 (--store-postgres-max-value-bytes)")
	got, err := s.Get(ctx(t), "big/1")
	require.NoError(t, err)
	require.Equal(t, exact.Value, got.Value)
	require.EqualValues(t, 1, got.Version)
}

// Values from CompressAbove on are stored compressed; smaller ones raw.
// Both read back as written.
func TestCompression(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	small := []byte(`{"a":1}`)
	large := []byte(`[` + strings.Repeat(`{"id":1,"title":"The Silent Orchard","year":1999},`, 40) + `{"id":2}]`)
	for i, v := range [][]byte{small, large} {
		require.NoError(t, s.Put(ctx(t), cache.Entry{Key: fmt.Sprintf("c/%d", i), Value: v, Version: 1, ComputedAt: time.Now()}))
		got, err := s.Get(ctx(t), fmt.Sprintf("c/%d", i))
		require.NoError(t, err)
		require.Equal(t, string(v), string(got.Value))
	}
	var codec int
	var stored int
	q := `SELECT codec, octet_length(value) FROM ` + pgx.Identifier{s.Config().Schema, "cache_entries"}.Sanitize() + ` WHERE key = $1`
	require.NoError(t, s.Pool().QueryRow(ctx(t), q, "c/0").Scan(&codec, &stored))
	require.Equal(t, 0, codec)
	require.Equal(t, len(small), stored)
	require.NoError(t, s.Pool().QueryRow(ctx(t), q, "c/1").Scan(&codec, &stored))
	require.Equal(t, 1, codec)
	require.Less(t, stored, len(large)/4, "zstd shrinks repetitive JSON")
}

// Scan pages through every live entry in key order, skipping tombstones and
// expired entries.
func TestScan(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	// 1,203 live rows (three pages and a bit), written with SQL for speed.
	exec(t, s, `INSERT INTO SCHEMA.cache_entries (key, version, computed_at, codec, value)
		SELECT 'k/' || lpad(i::text, 5, '0'), i, now(), 0, convert_to(i::text, 'UTF8') FROM generate_series(1, 1203) i`)
	exec(t, s, `INSERT INTO SCHEMA.cache_entries (key, version, expires_at, codec, value)
		SELECT 'k/' || lpad(i::text, 5, '0') || '/expired', i, now() - interval '1 second', 0, '1' FROM generate_series(1, 10) i`)
	require.NoError(t, s.Delete(ctx(t), "k/00007", 1<<40)) // a tombstone in the middle
	large := []byte(`[` + strings.Repeat(`{"id":1},`, 300) + `{"id":2}]`)
	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "z/compressed", Value: large, Version: 5, ComputedAt: time.Now()}))
	var keys []string
	err := s.Scan(ctx(t), func(e cache.Entry) error {
		keys = append(keys, e.Key)
		if e.Key == "z/compressed" {
			require.Equal(t, string(large), string(e.Value))
		} else {
			require.Equal(t, fmt.Sprint(e.Version), string(e.Value))
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, keys, 1203)
	require.Equal(t, "k/00001", keys[0])
	require.Equal(t, "k/00008", keys[6], "the deleted k/00007 is skipped")
	require.Equal(t, "z/compressed", keys[len(keys)-1])
	for i := 1; i < len(keys); i++ {
		require.Less(t, keys[i-1], keys[i])
	}
	stop := errors.New("stop")
	n := 0
	require.ErrorIs(t, s.Scan(ctx(t), func(cache.Entry) error { n++; return stop }), stop)
	require.Equal(t, 1, n)
}

// Ops counts each round trip by kind.
func TestOps(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	q, err := s.Queue(queue.Config{})
	require.NoError(t, err)
	base := s.Ops()
	step := func(name string, want cache.StoreOps, fn func() error) {
		t.Helper()
		before := s.Ops()
		require.NoError(t, fn(), name)
		after := s.Ops()
		require.Equal(t, want, cache.StoreOps{Reads: after.Reads - before.Reads, Writes: after.Writes - before.Writes, LWTs: after.LWTs - before.LWTs}, name)
	}
	e := cache.Entry{Key: "ops/1", Value: []byte(`1`), Version: 1, ComputedAt: time.Now()}
	step("put", cache.StoreOps{Writes: 1}, func() error { return s.Put(ctx(t), e) })
	step("get", cache.StoreOps{Reads: 1}, func() error { _, err := s.Get(ctx(t), "ops/1"); return err })
	step("delete", cache.StoreOps{Writes: 1}, func() error { return s.Delete(ctx(t), "ops/1", 2) })
	step("acquire", cache.StoreOps{LWTs: 1}, func() error { _, err := s.Acquire(ctx(t), "l", "me", time.Minute); return err })
	step("release", cache.StoreOps{LWTs: 1}, func() error { return s.Release(ctx(t), "l", "me") })
	step("enqueue many", cache.StoreOps{Reads: 1, LWTs: 1}, func() error {
		return q.EnqueueMany(ctx(t), []string{"a/1", "a/2", "a/3"}, time.Now())
	})
	var items []queue.Item
	step("claim", cache.StoreOps{Reads: 1, LWTs: 1}, func() error { items, err = q.Claim(ctx(t), "w", 3, time.Minute); return err })
	require.Len(t, items, 3)
	step("done", cache.StoreOps{Reads: 1, LWTs: 1}, func() error { return q.Done(ctx(t), "w", items[0].Key, items[0].Version) })
	step("ping", cache.StoreOps{Reads: 1}, func() error { return s.Ping(ctx(t)) })
	require.Positive(t, base.Reads, "Open's schema check is a read")
}

// A stopped database is ErrUnavailable (the edge answers 503), and the
// store answers again once it is back, with no step of ours.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	cfg := postgres.Config{URL: srv.URL(), Schema: "kck"}
	_, _, err := postgres.Migrate(ctx(t), cfg)
	require.NoError(t, err)
	s := open(t, cfg)
	e := cache.Entry{Key: "u/1", Value: []byte(`1`), Version: 1, ComputedAt: time.Now()}
	require.NoError(t, s.Put(ctx(t), e))
	srv.Stop()
	_, err = s.Get(ctx(t), "u/1")
	require.ErrorIs(t, err, primers.ErrUnavailable)
	require.ErrorIs(t, s.Put(ctx(t), e), primers.ErrUnavailable)
	_, err = s.Acquire(ctx(t), "l", "me", time.Minute)
	require.ErrorIs(t, err, primers.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx(t)), primers.ErrUnavailable)
	srv.Start()
	require.Eventually(t, func() bool { return s.Ping(ctx(t)) == nil }, time.Minute, 50*time.Millisecond)
	got, err := s.Get(ctx(t), "u/1")
	require.NoError(t, err)
	require.Equal(t, "1", string(got.Value))
}
