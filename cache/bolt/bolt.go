// Package bolt is the embedded cache.Store: one file on local disk, no server
// to run. It is the default store of a single gateway.
//
// It is built on bbolt (go.etcd.io/bbolt, maintained by the etcd project):
// a pure-Go B+tree with ACID transactions, lock-free MVCC readers and one file
// that survives restarts. We chose it over Pebble and Badger because the store
// sits behind the in-process tier, so its job is durable, simple and correct
// rather than fast writes at scale: bbolt has the smallest dependency and
// operational footprint (no compaction, no value log) and its read-compare-write
// transactions give the version rules of cache.Store directly. Concurrent Puts
// share transactions (and fsyncs) without waiting for one another (commit.go).
//
// bbolt takes an exclusive lock on its file, so one process owns a store.
// Leases therefore live in memory: there is no other process to coordinate
// with. Deletions leave a tombstone (the deletion's version) for a while, so a
// computation that started before a delete cannot resurrect the key.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kck-go/kck/cache"
)

var (
	bucketEntries    = []byte("entries")
	bucketTombstones = []byte("tombstones")
)

// header: version, computedAt, staleAt, expiresAt (Unix nanoseconds, 0 for
// the zero time), then the value.
const headerLen = 32

// Options configure a Store.
type Options struct {
	// SweepInterval is how often expired entries and old tombstones are
	// removed from disk. Default 1 minute.
	SweepInterval time.Duration
	// TombstoneTTL is how long a deletion's version is remembered. It must
	// exceed the longest primer run. Default 10 minutes.
	TombstoneTTL time.Duration
	// OpenTimeout bounds waiting for another process's lock on the file.
	// Default 5 s.
	OpenTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Minute
	}
	if o.TombstoneTTL == 0 {
		o.TombstoneTTL = 10 * time.Minute
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = 5 * time.Second
	}
	return o
}

// Store is the bbolt-backed cache.Store.
type Store struct {
	db     *bbolt.DB
	commit *groupCommit // every write but the sweeper's
	opts   Options

	leaseMu sync.Mutex
	leases  map[string]lease

	ops *cache.OpCounts // shared with the queue

	stop chan struct{}
	wg   sync.WaitGroup
}

type lease struct {
	owner   string
	expires time.Time
}

var (
	_ cache.Store     = (*Store)(nil)
	_ cache.Scanner   = (*Store)(nil)
	_ cache.OpCounter = (*Store)(nil)
)

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bolt: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "kck.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("bolt: %s is locked by another process (is another gateway running on this data dir?)", path)
		}
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketTombstones} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", path, err)
	}
	s := &Store{db: db, commit: &groupCommit{db: db}, opts: opts, leases: map[string]lease{}, stop: make(chan struct{}), ops: &cache.OpCounts{}}
	s.wg.Add(1)
	go s.sweepLoop()
	return s, nil
}

// Close stops the sweeper and closes the file.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.wg.Wait()
	return s.db.Close()
}

// Get returns the live entry for key.
func (s *Store) Get(ctx context.Context, key string) (cache.Entry, error) {
	if err := ctx.Err(); err != nil {
		return cache.Entry{}, err
	}
	var e cache.Entry
	s.ops.Read(1)
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketEntries).Get([]byte(key))
		if raw == nil {
			return cache.ErrNotFound
		}
		var err error
		e, err = decode(key, raw)
		return err
	})
	if err != nil {
		return cache.Entry{}, wrap("get", key, err)
	}
	if e.Expired(time.Now()) {
		return cache.Entry{}, wrap("get", key, cache.ErrNotFound)
	}
	return e, nil
}

// Put stores e unless a version at least as high is stored or was deleted.
func (s *Store) Put(ctx context.Context, e cache.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Expired(time.Now()) {
		return nil
	}
	k := []byte(e.Key)
	val := encode(e)
	s.ops.Write(1)
	err := s.commit.do(func(tx *bbolt.Tx) error {
		if ts := tx.Bucket(bucketTombstones).Get(k); ts != nil && binary.BigEndian.Uint64(ts) >= e.Version {
			return nil
		}
		b := tx.Bucket(bucketEntries)
		if cur := b.Get(k); len(cur) >= 8 && binary.BigEndian.Uint64(cur) >= e.Version {
			return nil
		}
		return b.Put(k, val)
	})
	return wrap("put", e.Key, err)
}

// Delete removes key if its version is at most version, and remembers the
// deletion so that older writes stay out.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := []byte(key)
	s.ops.Write(1)
	err := s.commit.do(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if cur := b.Get(k); len(cur) >= 8 && binary.BigEndian.Uint64(cur) > version {
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		tb := tx.Bucket(bucketTombstones)
		if ts := tb.Get(k); ts != nil && binary.BigEndian.Uint64(ts) >= version {
			return nil
		}
		var ts [16]byte
		binary.BigEndian.PutUint64(ts[:8], version)
		binary.BigEndian.PutUint64(ts[8:], uint64(time.Now().UnixNano()))
		return tb.Put(k, ts[:])
	})
	return wrap("delete", key, err)
}

// Acquire takes a lease in memory (see the package doc).
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := time.Now()
	s.ops.LWT(1)
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l, ok := s.leases[name]; ok && l.owner != owner && now.Before(l.expires) {
		return false, nil
	}
	s.leases[name] = lease{owner: owner, expires: now.Add(ttl)}
	return true, nil
}

// Release frees a lease held by owner.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	s.ops.LWT(1)
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l, ok := s.leases[name]; ok && l.owner == owner {
		delete(s.leases, name)
	}
	return nil
}

// Ping checks that the file is open.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", "", s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketEntries) == nil {
			return errors.New("entries bucket missing")
		}
		return nil
	}))
}

// Scan calls fn for every live entry, in key order, for dump and backup.
func (s *Store) Scan(ctx context.Context, fn func(cache.Entry) error) error {
	now := time.Now()
	s.ops.Read(1)
	return s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := decode(string(k), v)
			if err != nil {
				return err
			}
			if e.Expired(now) {
				return nil
			}
			return fn(e)
		})
	})
}

func (s *Store) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_ = s.sweep(time.Now())
		}
	}
}

// sweep deletes expired entries, run-out leases and old tombstones.
func (s *Store) sweep(now time.Time) error {
	s.leaseMu.Lock()
	for name, l := range s.leases {
		if !now.Before(l.expires) {
			delete(s.leases, name)
		}
	}
	s.leaseMu.Unlock()
	return s.db.Update(func(tx *bbolt.Tx) error {
		var dead [][]byte
		err := tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if len(v) >= headerLen {
				if exp := int64(binary.BigEndian.Uint64(v[24:32])); exp != 0 && exp <= now.UnixNano() {
					dead = append(dead, k)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := tx.Bucket(bucketEntries).Delete(k); err != nil {
				return err
			}
		}
		dead = dead[:0]
		horizon := now.Add(-s.opts.TombstoneTTL).UnixNano()
		err = tx.Bucket(bucketTombstones).ForEach(func(k, v []byte) error {
			if len(v) == 16 && int64(binary.BigEndian.Uint64(v[8:])) < horizon {
				dead = append(dead, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := tx.Bucket(bucketTombstones).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func encode(e cache.Entry) []byte {
	buf := make([]byte, headerLen+len(e.Value))
	binary.BigEndian.PutUint64(buf[0:], e.Version)
	binary.BigEndian.PutUint64(buf[8:], uint64(nanos(e.ComputedAt)))
	binary.BigEndian.PutUint64(buf[16:], uint64(nanos(e.StaleAt)))
	binary.BigEndian.PutUint64(buf[24:], uint64(nanos(e.ExpiresAt)))
	copy(buf[headerLen:], e.Value)
	return buf
}

func decode(key string, raw []byte) (cache.Entry, error) {
	if len(raw) < headerLen {
		return cache.Entry{}, fmt.Errorf("corrupt entry (%d bytes)", len(raw))
	}
	return cache.Entry{
		Key:        key,
		Version:    binary.BigEndian.Uint64(raw[0:]),
		ComputedAt: fromNanos(int64(binary.BigEndian.Uint64(raw[8:]))),
		StaleAt:    fromNanos(int64(binary.BigEndian.Uint64(raw[16:]))),
		ExpiresAt:  fromNanos(int64(binary.BigEndian.Uint64(raw[24:]))),
		// bbolt's bytes are valid only inside the transaction.
		Value: append([]byte(nil), raw[headerLen:]...),
	}, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// wrap translates errors into the cache package's terms, in one place.
func wrap(op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cache.ErrNotFound):
		return fmt.Errorf("bolt %s %q: %w", op, key, cache.ErrNotFound)
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("bolt %s %q: store closed: %w", op, key, err)
	}
	return fmt.Errorf("bolt %s %q: %w", op, key, err)
}

// Ops counts the store's operations and its queue's (cache.OpCounter).
func (s *Store) Ops() cache.StoreOps { return s.ops.Ops() }
