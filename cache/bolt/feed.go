package bolt

import (
	"context"
	"sync"
	"time"

	"github.com/kck-go/kck/cache"
)

// The embedded store belongs to one process, so its change feed lives in
// memory: it serves caches of the same process that share the store (several
// gateways in one test, or a gateway and a worker).
type changeLog struct {
	mu      sync.Mutex
	changes []cache.Change // in publish order
}

const (
	feedRetention = 5 * time.Minute
	feedMax       = 100_000
)

var _ cache.ChangeFeed = (*Store)(nil)

// Publish records a change for the other caches over this store.
func (s *Store) Publish(_ context.Context, ch cache.Change) error {
	l := &s.feed
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, ch)
	// Trim from the front: old changes are read by nobody.
	cut := 0
	for cut < len(l.changes) && (len(l.changes)-cut > feedMax || ch.At.Sub(l.changes[cut].At) > feedRetention) {
		cut++
	}
	if cut > 0 && cut >= len(l.changes)/4 { // amortised: copy rarely
		l.changes = append(l.changes[:0], l.changes[cut:]...)
	}
	return nil
}

// Changes returns the changes published at or after since.
func (s *Store) Changes(_ context.Context, since time.Time) ([]cache.Change, error) {
	l := &s.feed
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []cache.Change
	for i := len(l.changes) - 1; i >= 0 && !l.changes[i].At.Before(since); i-- {
		out = append(out, l.changes[i])
	}
	return out, nil
}
