package cassandra

import (
	"context"
	"fmt"
	"time"

	"github.com/kck-go/kck/cache"
)

// The change feed: one partition per FeedBucket of publish time, rows
// ordered by publish time. A poll reads the buckets from since to now, which
// is one or two partitions for the cache's 2-second overlap.

func (s *Store) bucket(t time.Time) int64 { return t.UnixMicro() / s.cfg.FeedBucket.Microseconds() }

// Publish records a change.
func (s *Store) Publish(ctx context.Context, ch cache.Change) error {
	at := ch.At
	if at.IsZero() {
		at = time.Now()
	}
	err := s.write(`INSERT INTO changes (bucket, at_us, key, version, origin) VALUES (?, ?, ?, ?, ?)`,
		s.bucket(at), at.UnixMicro(), ch.Key, int64(ch.Version), ch.Origin).ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("cassandra publish %q: %w", ch.Key, err)
	}
	return nil
}

// Changes returns the changes published at or after since.
func (s *Store) Changes(ctx context.Context, since time.Time) ([]cache.Change, error) {
	var out []cache.Change
	now := time.Now()
	first, last := s.bucket(since), s.bucket(now)
	if last-first > 60 {
		first = last - 60 // the table keeps 10 minutes anyway
	}
	for b := first; b <= last; b++ {
		it := s.read(`SELECT at_us, key, version, origin FROM changes WHERE bucket = ? AND at_us >= ?`, b, since.UnixMicro()).IterContext(ctx)
		var (
			at, version int64
			key, origin string
		)
		for it.Scan(&at, &key, &version, &origin) {
			out = append(out, cache.Change{Key: key, Version: uint64(version), Origin: origin, At: time.UnixMicro(at).UTC()})
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("cassandra changes: %w", err)
		}
	}
	return out, nil
}
