package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/kck-go/kck/primers"
)

// Watching: a subscriber learns that a key has a new version, whichever
// gateway of the cluster made it. This gateway's own writes (compute,
// refresh, update, augment, set, invalidate, a dependency's cascade) notify
// when they announce; another gateway's writes notify when the bus brings
// them (see Bus). Nothing polls the store for a watcher.

// Watch is one watcher of one key. C holds at most one pending signal: a
// watcher that has not looked yet sees one signal however many versions
// came, and Version tells the newest it heard of. So a slow watcher costs
// one slot, never a queue.
type Watch struct {
	// C receives a value when the key may have a new version.
	C <-chan struct{}

	c       chan struct{}
	key     string
	w       *watchers
	mu      sync.Mutex
	version uint64
}

// Key is the canonical key watched.
func (w *Watch) Key() string { return w.key }

// Version is the newest version a change notified for the key (0 before
// any, or when the change came without one).
func (w *Watch) Version() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version
}

// Stop ends the watch. C is not closed.
func (w *Watch) Stop() { w.w.remove(w) }

func (w *Watch) signal(version uint64) {
	w.mu.Lock()
	w.version = max(w.version, version)
	w.mu.Unlock()
	select {
	case w.c <- struct{}{}:
	default: // a signal is pending: it covers this change too
	}
}

type watchers struct {
	mu    sync.Mutex
	byKey map[string]map[*Watch]struct{}
}

func (ws *watchers) add(key string) *Watch {
	c := make(chan struct{}, 1)
	w := &Watch{C: c, c: c, key: key, w: ws}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.byKey == nil {
		ws.byKey = map[string]map[*Watch]struct{}{}
	}
	set := ws.byKey[key]
	if set == nil {
		set = map[*Watch]struct{}{}
		ws.byKey[key] = set
	}
	set[w] = struct{}{}
	return w
}

func (ws *watchers) remove(w *Watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.byKey[w.key]
	delete(set, w)
	if len(set) == 0 {
		delete(ws.byKey, w.key)
	}
}

// has reports whether anyone watches key.
func (ws *watchers) has(key string) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.byKey[key]) > 0
}

// notifyAll tells every watcher to read again (version 0: no version is
// known).
func (ws *watchers) notifyAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, set := range ws.byKey {
		for w := range set {
			w.signal(0)
		}
	}
}

func (ws *watchers) notify(key string, version uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.byKey[key] {
		w.signal(version)
	}
}

// Watch starts watching key (made canonical first; a malformed key is an
// error). Stop it when done.
func (c *Cache) Watch(key string) (*Watch, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return nil, err
	}
	if k.Name == "" {
		if _, err := primers.SplitName(key); err != nil {
			return nil, err
		}
	}
	return c.watch.add(canonical), nil
}

// notify tells key's watchers that it has a new version (or was deleted).
func (c *Cache) notify(key string, version uint64) { c.watch.notify(key, version) }

// GetAtLeast reads key like Get, but when what it gets is older than min
// (a version a change announced), it drops an older in-process copy and
// reads again, a few times, PollInterval apart: the copy may not have
// heard of the change yet, a slower read may have put the old value back,
// or the read may have joined a load that began before the change. It
// returns the newest it got; that may still be older than min when the
// store does not have min yet. What it returns is recorded as Get records
// it.
func (c *Cache) GetAtLeast(ctx context.Context, key string, min uint64) (Result, error) {
	r, err := c.getAtLeast(ctx, key, min)
	if err == nil {
		c.Record(ctx, r)
	}
	return r, err
}

func (c *Cache) getAtLeast(ctx context.Context, key string, min uint64) (Result, error) {
	var last Result
	for attempt := range 4 {
		if attempt > 0 {
			t := time.NewTimer(c.opts.PollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return last, nil
			case <-t.C:
			}
		}
		r, err := c.get(ctx, key)
		if err != nil {
			if last.Entry != nil && !errors.Is(err, context.Canceled) {
				return last, nil // keep what we had rather than lose the subscriber's value
			}
			return r, err
		}
		if r.Version >= min {
			return r, nil
		}
		last = r
		c.mem.Compute(r.Key, func(e *Entry, found bool) (*Entry, otter.ComputeOp) {
			if found && e.Version < min {
				return nil, otter.InvalidateOp
			}
			return e, otter.CancelOp
		})
	}
	return last, nil
}
