package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/queue"
)

// bucketQueue holds the refresh queue: key -> JSON of a queue.Item.
var bucketQueue = []byte("queue")

// Queue is the embedded queue.Store. It lives in the Store's bbolt file (bbolt
// locks its file, so a second handle could not open it), in its own bucket.
// Every change of a row is one read-write transaction, which makes claims
// exclusive; the selection and the row changes are the queue package's.
//
// A claim reads every row to apply KCK's selection rules. That is the rules'
// price and fine for an embedded queue of up to some ten thousand keys.
type Queue struct {
	db     *bbolt.DB
	commit *groupCommit // the store's: queue and cache writes share transactions
	cfg    queue.Config
	ops    *cache.OpCounts // the store's
}

var _ queue.Store = (*Queue)(nil)

// Queue returns the refresh queue kept in s's file, creating its bucket on
// first use. The queue is usable until s is closed.
func (s *Store) Queue(cfg queue.Config) (*Queue, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketQueue)
		return err
	})
	if err != nil {
		return nil, wrap("queue init", "", err)
	}
	return &Queue{db: s.db, commit: s.commit, cfg: cfg, ops: s.ops}, nil
}

// Enqueue merges a request for key at time at.
func (q *Queue) Enqueue(ctx context.Context, key string, at time.Time) error {
	return q.EnqueueMany(ctx, []string{key}, at)
}

// EnqueueMany merges a request at time at for each key, in one transaction.
func (q *Queue) EnqueueMany(ctx context.Context, keys []string, at time.Time) error {
	trace := queue.TraceOf(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if k == "" {
			return errors.New("bolt queue: empty key")
		}
	}
	if len(keys) == 0 {
		return nil
	}
	q.ops.Write(1)
	err := q.commit.do(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketQueue)
		for _, k := range keys {
			var it queue.Item
			if raw := b.Get([]byte(k)); raw != nil {
				if err := json.Unmarshal(raw, &it); err != nil {
					return fmt.Errorf("corrupt queue row %q: %w", k, err)
				}
			}
			q.cfg.Merge(&it, k, at, trace)
			if err := putItem(b, &it); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("enqueue", firstKey(keys), err)
}

// Claim takes up to batch rows for worker, chosen by queue.Select.
func (q *Queue) Claim(ctx context.Context, worker string, batch int, leaseTTL time.Duration) ([]queue.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if worker == "" || batch <= 0 || leaseTTL <= 0 {
		return nil, errors.New("bolt queue: claim needs a worker name, a positive batch and a positive lease")
	}
	var out []queue.Item
	q.ops.LWT(1)
	err := q.db.Update(func(tx *bbolt.Tx) error {
		out = out[:0]
		b := tx.Bucket(bucketQueue)
		now := q.cfg.Clock.Now()
		var cands, expired []queue.Item
		err := b.ForEach(func(k, v []byte) error {
			var it queue.Item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("corrupt queue row %q: %w", k, err)
			}
			if q.cfg.Expire(&it, now) {
				expired = append(expired, it)
			}
			if q.cfg.Claimable(&it, now) {
				cands = append(cands, it)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// A bucket must not change under ForEach: write afterwards.
		for i := range expired {
			if err := putItem(b, &expired[i]); err != nil {
				return err
			}
		}
		for _, it := range queue.Select(cands, batch) {
			q.cfg.Claim(&it, worker, now, leaseTTL)
			if err := putItem(b, &it); err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("claim", "", err)
	}
	return out, nil
}

// Done ends worker's successful refresh of key, claimed at version.
func (q *Queue) Done(ctx context.Context, worker, key string, version uint64) error {
	return q.change(ctx, "done", key, func(b *bbolt.Bucket, it *queue.Item) error {
		remove, err := q.cfg.Done(it, worker, version)
		if err != nil {
			return err
		}
		if remove {
			return b.Delete([]byte(key))
		}
		return putItem(b, it)
	})
}

// Release ends worker's failed refresh of key: backoff, or poison.
func (q *Queue) Release(ctx context.Context, worker, key string, version uint64, cause error) error {
	return q.change(ctx, "release", key, func(b *bbolt.Bucket, it *queue.Item) error {
		if err := q.cfg.Release(it, worker, cause, q.cfg.Clock.Now()); err != nil {
			return err
		}
		return putItem(b, it)
	})
}

// change applies fn to key's row in a coalesced transaction. A missing row
// is ErrNotClaimed: whoever asks no longer holds it.
func (q *Queue) change(ctx context.Context, op, key string, fn func(*bbolt.Bucket, *queue.Item) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A shared transaction may run a function again, alone, when another
	// function of it fails; the rule's error is kept apart from the
	// transaction's so that it does not fail the others.
	var ruleErr error
	q.ops.LWT(1)
	err := q.commit.do(func(tx *bbolt.Tx) error {
		ruleErr = nil
		b := tx.Bucket(bucketQueue)
		raw := b.Get([]byte(key))
		if raw == nil {
			ruleErr = fmt.Errorf("%w: %s is not queued", queue.ErrNotClaimed, key)
			return nil
		}
		var it queue.Item
		if err := json.Unmarshal(raw, &it); err != nil {
			return fmt.Errorf("corrupt queue row %q: %w", key, err)
		}
		if err := fn(b, &it); err != nil {
			if errors.Is(err, queue.ErrNotClaimed) {
				ruleErr = err
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		return wrap(op, key, err)
	}
	return ruleErr
}

// Get returns key's row.
func (q *Queue) Get(ctx context.Context, key string) (queue.Item, error) {
	if err := ctx.Err(); err != nil {
		return queue.Item{}, err
	}
	var it queue.Item
	q.ops.Read(1)
	err := q.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketQueue).Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("%w: %s", queue.ErrNotFound, key)
		}
		return json.Unmarshal(raw, &it)
	})
	if err != nil {
		return queue.Item{}, wrap("queue get", key, err)
	}
	return it, nil
}

// Remove deletes key's row whatever its state.
func (q *Queue) Remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.ops.Write(1)
	return wrap("queue remove", key, q.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueue).Delete([]byte(key))
	}))
}

// Stats describes the queue now.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if err := ctx.Err(); err != nil {
		return queue.Stats{}, err
	}
	var s queue.Stats
	now := q.cfg.Clock.Now()
	q.ops.Read(1)
	err := q.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueue).ForEach(func(k, v []byte) error {
			var it queue.Item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("corrupt queue row %q: %w", k, err)
			}
			queue.AddToStats(&s, &it, now)
			return nil
		})
	})
	if err != nil {
		return queue.Stats{}, wrap("queue stats", "", err)
	}
	return s, nil
}

// putItem writes it with a new version, unique within the bucket.
func putItem(b *bbolt.Bucket, it *queue.Item) error {
	v, err := b.NextSequence()
	if err != nil {
		return err
	}
	it.Version = v
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return b.Put([]byte(it.Key), raw)
}

func firstKey(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
