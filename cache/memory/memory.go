// Package memory is a cache.Store held in this process's memory: what the
// fast tier of tests (make check) runs the cache, the GraphQL resolvers and
// the gateway on, with no file and no server. It keeps the whole contract
// (cachetest.Run passes unchanged): versions never go backwards, a deletion
// keeps older writes out, expiry, leases. Nothing survives the process and
// nothing bounds its size: it is not a production store (the embedded
// store is the one-machine store).
package memory

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kck-go/kck/cache"
)

// Store is the in-memory cache.Store.
type Store struct {
	cache.OpCounts

	mu      sync.Mutex
	entries map[string]cache.Entry
	deleted map[string]tombstone // a deletion's version, kept TombstoneTTL
	leases  map[string]lease
	closed  bool
}

type tombstone struct {
	version uint64
	at      time.Time
}

type lease struct {
	owner   string
	expires time.Time
}

// TombstoneTTL is how long a deletion keeps older writes out: longer than
// any primer run that started before it.
const TombstoneTTL = 10 * time.Minute

var (
	_ cache.Store     = (*Store)(nil)
	_ cache.NewPutter = (*Store)(nil)
	_ cache.Scanner   = (*Store)(nil)
	_ cache.OpCounter = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{entries: map[string]cache.Entry{}, deleted: map[string]tombstone{}, leases: map[string]lease{}}
}

func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return fmt.Errorf("memory store: %w", cache.ErrClosed)
	}
	return nil
}

// Get returns the live entry of key; its value is a copy.
func (s *Store) Get(ctx context.Context, key string) (cache.Entry, error) {
	s.Read(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return cache.Entry{}, err
	}
	e, ok := s.entries[key]
	if !ok || e.Expired(time.Now()) {
		return cache.Entry{}, fmt.Errorf("memory get %q: %w", key, cache.ErrNotFound)
	}
	e.Value = bytes.Clone(e.Value)
	return e, nil
}

// Put stores e unless an equal or higher version is stored or was deleted.
func (s *Store) Put(ctx context.Context, e cache.Entry) error {
	s.Write(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	now := time.Now()
	if e.Expired(now) {
		return nil
	}
	if t, ok := s.deleted[e.Key]; ok {
		if now.Sub(t.at) < TombstoneTTL && t.version >= e.Version {
			return nil
		}
		delete(s.deleted, e.Key)
	}
	if cur, ok := s.entries[e.Key]; ok && cur.Version >= e.Version && !cur.Expired(now) {
		return nil
	}
	e.Value = bytes.Clone(e.Value)
	s.entries[e.Key] = e
	return nil
}

// PutNew is Put: there is no round trip to save.
func (s *Store) PutNew(ctx context.Context, e cache.Entry) error { return s.Put(ctx, e) }

// Delete removes key if its version is at most version, and keeps older
// writes out for TombstoneTTL.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	s.Write(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if cur, ok := s.entries[key]; ok && cur.Version > version {
		return nil
	}
	delete(s.entries, key)
	if t, ok := s.deleted[key]; !ok || t.version < version {
		s.deleted[key] = tombstone{version: version, at: time.Now()}
	}
	return nil
}

// Acquire takes or extends a lease.
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	s.LWT(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return false, err
	}
	now := time.Now()
	if l, ok := s.leases[name]; ok && l.owner != owner && now.Before(l.expires) {
		return false, nil
	}
	s.leases[name] = lease{owner: owner, expires: now.Add(ttl)}
	return true, nil
}

// Release gives up a lease owner holds.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	s.LWT(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if l, ok := s.leases[name]; ok && l.owner == owner {
		delete(s.leases, name)
	}
	return nil
}

// LeaseHolder says who holds a lease ("" when nobody does).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	s.Read(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return "", err
	}
	if l, ok := s.leases[name]; ok && time.Now().Before(l.expires) {
		return l.owner, nil
	}
	return "", nil
}

// Ping answers unless the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.check(ctx)
}

// Scan calls fn for every live entry, in no order. fn runs without the
// store's lock held.
func (s *Store) Scan(ctx context.Context, fn func(cache.Entry) error) error {
	s.Read(1)
	s.mu.Lock()
	if err := s.check(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	now := time.Now()
	live := make([]cache.Entry, 0, len(s.entries))
	for _, e := range s.entries {
		if !e.Expired(now) {
			e.Value = bytes.Clone(e.Value)
			live = append(live, e)
		}
	}
	s.mu.Unlock()
	for _, e := range live {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Close makes every later call fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
