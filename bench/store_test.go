package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// BenchmarkStore compares each shared store's Get and Put with raw
// statements on the same table, in the same run, and reports p50 and p99
// latency beside ns/op. The raw statements are the floor: one prepared
// statement, no version check, no compression (Cassandra: no speculative
// execution either).
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	value := []byte(`[` + strings.Repeat(`{"id":1,"title":"The Silent Orchard","year":1999},`, 15) + `{"id":2}]`)
	b.Run("postgres", func(b *testing.B) {
		s := pgstoretest.Open(b)
		table := pgx.Identifier{s.Config().Schema, "cache_entries"}.Sanitize()
		pool := s.Pool()
		storeVsRaw(b, s, value,
			func(key string) error {
				var v []byte
				var ver int64
				return pool.QueryRow(ctx, `SELECT value, version FROM `+table+` WHERE key = $1`, key).Scan(&v, &ver)
			},
			func(key string) error {
				_, err := pool.Exec(ctx, `INSERT INTO `+table+` (key, version, computed_at, codec, value) VALUES ($1, $2, now(), 0, $3)`,
					key, time.Now().UnixMicro(), value)
				return err
			})
	})
	b.Run("cassandra", func(b *testing.B) {
		s, err := cassandra.Open(ctx, cassandratest.Keyspace(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sess := s.Session()
		storeVsRaw(b, s, value,
			func(key string) error {
				var v []byte
				var ver int64
				return sess.Query(`SELECT value, version FROM cache_entries WHERE key = ?`, key).ScanContext(ctx, &v, &ver)
			},
			func(key string) error {
				return sess.Query(`INSERT INTO cache_entries (key, value, codec, version, computed_at, stale_at, expires_at) VALUES (?, ?, 0, ?, ?, 0, 0)`,
					key, value, time.Now().UnixMicro(), time.Now().UnixMicro()).ExecContext(ctx)
			})
	})
}

// storeVsRaw stores 1,000 keys, then measures s.Get against rawGet on them
// and s.Put against rawPut of new keys.
func storeVsRaw(b *testing.B, s cache.Store, value []byte, rawGet, rawPut func(key string) error) {
	ctx := context.Background()
	const keys = 1000
	for i := range keys {
		if err := s.Put(ctx, cache.Entry{Key: fmt.Sprintf("bench/%d", i), Value: value, Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("get/raw", func(b *testing.B) {
		measure(b, func(i int) error { return rawGet(fmt.Sprintf("bench/%d", i%keys)) })
	})
	b.Run("get/store", func(b *testing.B) {
		measure(b, func(i int) error {
			_, err := s.Get(ctx, fmt.Sprintf("bench/%d", i%keys))
			return err
		})
	})
	run := 0
	b.Run("put/raw", func(b *testing.B) {
		run++
		measure(b, func(i int) error { return rawPut(fmt.Sprintf("raw/%d/%d", run, i)) })
	})
	b.Run("put/store", func(b *testing.B) {
		run++
		measure(b, func(i int) error {
			return s.Put(ctx, cache.Entry{Key: fmt.Sprintf("put/%d/%d", run, i), Value: value, Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()})
		})
	})
}
