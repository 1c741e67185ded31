package cassandra

import (
	"context"
	"fmt"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/kck-go/kck/cache"
)

// The change feed: one partition per FeedBucket of publish time, rows
// ordered by publish time. A poll reads the buckets from since to now, which
// is one or two partitions for the cache's 2-second overlap.

func (s *Store) bucket(t time.Time) int64 { return t.UnixMicro() / s.cfg.FeedBucket.Microseconds() }

// Publish records a change. Changes published at once share a request:
// see publisher.
func (s *Store) Publish(ctx context.Context, ch cache.Change) error {
	at := ch.At
	if at.IsZero() {
		at = time.Now()
	}
	c := &pubCall{row: changeRow{bucket: s.bucket(at), atUS: at.UnixMicro(), key: ch.Key, version: int64(ch.Version), origin: ch.Origin}, done: make(chan error, 1)}
	s.pub.add(s, c)
	select {
	case err := <-c.done:
		if err != nil {
			return fmt.Errorf("cassandra publish %q: %w", ch.Key, err)
		}
		return nil
	case <-ctx.Done():
		// The change is written anyway (or fails unseen): a change more is
		// harmless to followers.
		return fmt.Errorf("cassandra publish %q: %w", ch.Key, ctx.Err())
	}
}

const insertChange = `INSERT INTO changes (bucket, at_us, key, version, origin) VALUES (?, ?, ?, ?, ?)`

type changeRow struct {
	bucket, atUS int64
	key          string
	version      int64
	origin       string
}

type pubCall struct {
	row  changeRow
	done chan error
}

// publisher coalesces the changes published at once into unlogged batches
// of one feed partition each: a bulk write (boot warming, a bulk refresh)
// publishes a change per key, all in the current bucket, and a batch of
// rows of one partition is one mutation on each replica rather than one
// request per row. That is the case batches are for; batches across
// partitions (the values) are not coalesced: they would cost the
// coordinator more and lose token-aware routing (tried, measured slower).
//
// No change waits for company: with fewer than maxPublishFlights requests
// in flight a change goes at once (alone, as a plain insert), and the
// changes that arrive meanwhile go together in the next request. A caller
// returns once its change is written, so that, as before, a change is
// published after the value it announces is stored.
type publisher struct {
	mu      sync.Mutex
	flights int
	pending []*pubCall
}

// maxPublishFlights bounds the feed requests in flight; maxPublishBatch and
// maxPublishBytes keep a batch below Cassandra's batch_size_warn_threshold
// (5 KiB by default).
const (
	maxPublishFlights = 4
	maxPublishBatch   = 64
	maxPublishBytes   = 4 << 10
)

func (p *publisher) add(s *Store, c *pubCall) {
	p.mu.Lock()
	p.pending = append(p.pending, c)
	start := p.flights < maxPublishFlights
	if start {
		p.flights++
	}
	p.mu.Unlock()
	if start {
		go p.lead(s)
	}
}

// lead writes pending changes until none is left.
func (p *publisher) lead(s *Store) {
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.flights--
			p.mu.Unlock()
			return
		}
		batch := p.take()
		p.mu.Unlock()
		err := s.writeChanges(batch)
		for _, c := range batch {
			c.done <- err
		}
	}
}

// take removes from pending the next batch: changes of the first one's
// partition, within the batch limits. p.mu is held.
func (p *publisher) take() []*pubCall {
	first := p.pending[0].row.bucket
	var batch, rest []*pubCall
	size := 0
	for _, c := range p.pending {
		n := len(c.row.key) + len(c.row.origin) + 32
		if c.row.bucket != first || len(batch) == maxPublishBatch || (len(batch) > 0 && size+n > maxPublishBytes) {
			rest = append(rest, c)
			continue
		}
		batch = append(batch, c)
		size += n
	}
	p.pending = rest
	return batch
}

// writeChanges writes rows of one partition. It is bounded by the
// session's request timeout, not by any one caller's context.
func (s *Store) writeChanges(batch []*pubCall) error {
	if len(batch) == 1 {
		r := batch[0].row
		return s.write(insertChange, r.bucket, r.atUS, r.key, r.version, r.origin).ExecContext(context.Background())
	}
	b := s.s.Batch(gocql.UnloggedBatch)
	for _, c := range batch {
		r := c.row
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: insertChange, Args: []any{r.bucket, r.atUS, r.key, r.version, r.origin}, Idempotent: true})
	}
	return b.ExecContext(context.Background())
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
