package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.etcd.io/bbolt"

	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/queue"
)

// BenchmarkQueue measures one refresh's way through the refresh queue,
// Enqueue then Claim (a batch of one) then Done, on each store, beside the
// raw write that makes one change of a row atomic on that store (a bbolt
// read-write transaction; an UPDATE conditioned on the row's version in
// PostgreSQL; a Cassandra lightweight transaction on the queue's table), in
// the same run. A cycle is three changes of the row, so three raw writes is
// its floor; each change on PostgreSQL and Cassandra also reads the row (a
// claim, the queue) first.
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

	pgs := pgstoretest.Open(b)
	b.Run("postgres/raw-write", func(b *testing.B) {
		table := pgx.Identifier{pgs.Config().Schema, "refresh_queue"}.Sanitize()
		const key = "raw/1"
		if _, err := pgs.Pool().Exec(ctx, `INSERT INTO `+table+` (queue, key, version, requests, first_requested, last_requested)
			VALUES ('raw', $1, 1, 1, now(), now()) ON CONFLICT DO NOTHING`, key); err != nil {
			b.Fatal(err)
		}
		var version int64
		if err := pgs.Pool().QueryRow(ctx, `SELECT version FROM `+table+` WHERE queue = 'raw' AND key = $1`, key).Scan(&version); err != nil {
			b.Fatal(err)
		}
		measure(b, func(int) error {
			tag, err := pgs.Pool().Exec(ctx, `UPDATE `+table+` SET version = $1, requests = requests + 1, last_requested = now()
				WHERE queue = 'raw' AND key = $2 AND version = $3`, version+1, key, version)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("conditional update not applied at version %d", version)
			}
			version++
			return nil
		})
	})
	b.Run("postgres/cycle", func(b *testing.B) {
		q, err := pgs.QueueNamed(fmt.Sprintf("bench_%d", b.N), queue.Config{})
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
