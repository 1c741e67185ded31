package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/queue"
)

// BenchmarkQueue measures one refresh's way through the refresh queue,
// Enqueue then Claim (a batch of one) then Done, on each store, beside the
// raw write that makes one change of a row atomic on that store (a bbolt
// read-write transaction; a Cassandra lightweight transaction on the queue's
// table), in the same run. A cycle is three changes of the row, so three
// raw writes is its floor; Claim on Cassandra also reads the queue's 16
// shards.
func BenchmarkQueue(b *testing.B) {
	ctx := context.Background()
	item := make([]byte, 250) // about the JSON of a queue.Item
	cycle := func(b *testing.B, q queue.Store) {
		measure(b, func(i int) error {
			key := fmt.Sprintf("title_list/%d", i)
			if err := q.Enqueue(ctx, key, time.Now()); err != nil {
				return err
			}
			items, err := q.Claim(ctx, "bench", 1, time.Minute)
			if err != nil {
				return err
			}
			if len(items) != 1 || items[0].Key != key {
				return fmt.Errorf("claimed %v, want %s", items, key)
			}
			return q.Done(ctx, "bench", key, items[0].Version)
		})
	}

	b.Run("embedded/raw-txn", func(b *testing.B) {
		db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		measure(b, func(i int) error {
			return db.Update(func(tx *bbolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("q"))
				if err != nil {
					return err
				}
				return bk.Put([]byte(fmt.Sprintf("title_list/%d", i)), item)
			})
		})
	})
	b.Run("embedded/cycle", func(b *testing.B) {
		s, err := bolt.Open(b.TempDir(), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		q, err := s.Queue(queue.Config{})
		if err != nil {
			b.Fatal(err)
		}
		cycle(b, q)
	})

	ks := cassandratest.Keyspace(b)
	s, err := cassandra.Open(ctx, ks)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("cassandra/raw-lwt", func(b *testing.B) {
		sess := s.Session()
		const key = "raw/1"
		if err := sess.Query(`INSERT INTO refresh_queue (queue, shard, key, version, item) VALUES ('raw', 0, ?, 0, ?)`, key, item).ExecContext(ctx); err != nil {
			b.Fatal(err)
		}
		version := int64(0)
		measure(b, func(int) error {
			applied, err := sess.Query(`UPDATE refresh_queue SET version = ?, item = ? WHERE queue = 'raw' AND shard = 0 AND key = ? IF version = ?`,
				version+1, item, key, version).MapScanCASContext(ctx, map[string]any{})
			if err != nil {
				return err
			}
			if !applied {
				return fmt.Errorf("lightweight transaction not applied at version %d", version)
			}
			version++
			return nil
		})
	})
	b.Run("cassandra/cycle", func(b *testing.B) {
		q, err := s.QueueNamed(fmt.Sprintf("bench_%d", b.N), queue.Config{})
		if err != nil {
			b.Fatal(err)
		}
		cycle(b, q)
	})
}

// measure runs op b.N times and reports the p50 and p99 latency beside
// ns/op.
func measure(b *testing.B, op func(i int) error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
