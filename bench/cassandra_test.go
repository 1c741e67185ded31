package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
)

// BenchmarkCassandraStore compares the store's Get and Put with raw gocql
// statements on the same table, in the same run, and reports p50 and p99
// latency beside ns/op. The raw statements are the floor: one prepared
// statement, no version check, no compression, no speculative execution.
func BenchmarkCassandraStore(b *testing.B) {
	ks := cassandratest.Keyspace(b)
	ctx := context.Background()
	s, err := cassandra.Open(ctx, ks)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := []byte(`[` + strings.Repeat(`{"id":1,"title":"The Silent Orchard","year":1999},`, 15) + `{"id":2}]`)
	const keys = 1000
	for i := range keys {
		if err := s.Put(ctx, cache.Entry{Key: fmt.Sprintf("bench/%d", i), Value: value, Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	sess := s.Session()
	b.Run("get/raw", func(b *testing.B) {
		measure(b, func(i int) error {
			var v []byte
			var ver int64
			return sess.Query(`SELECT value, version FROM cache_entries WHERE key = ?`, fmt.Sprintf("bench/%d", i%keys)).ScanContext(ctx, &v, &ver)
		})
	})
	b.Run("get/store", func(b *testing.B) {
		measure(b, func(i int) error {
			_, err := s.Get(ctx, fmt.Sprintf("bench/%d", i%keys))
			return err
		})
	})
	b.Run("put/raw", func(b *testing.B) {
		measure(b, func(i int) error {
			return sess.Query(`INSERT INTO cache_entries (key, value, codec, version, computed_at, stale_at, expires_at) VALUES (?, ?, 0, ?, ?, 0, 0)`,
				fmt.Sprintf("raw/%d", i), value, time.Now().UnixMicro(), time.Now().UnixMicro()).ExecContext(ctx)
		})
	})
	b.Run("put/store", func(b *testing.B) {
		measure(b, func(i int) error {
			return s.Put(ctx, cache.Entry{Key: fmt.Sprintf("put/%d", i), Value: value, Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()})
		})
	})
}
