package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/tracing"
)

// The one background refresh path: stale reads, dependency cascades,
// source changes and refresh rules all recompute here, BackgroundRefreshes
// at a time in all, each through Refresh (the path every refresh takes,
// background or not).

// bgJob is a key waiting for a background slot, and who wants to hear how
// its refresh went.
type bgJob struct {
	done  []func(error)
	asked time.Time // when the last of those it answers asked
	// sourceChanged: asked by RefreshChanged (no lease; skipped when
	// nobody holds the key).
	sourceChanged bool
	// trace: how the refresh is traced (the first asker's).
	trace bgTrace
}

// refreshInBackground recomputes key, served stale meanwhile, unless its
// refresh is waiting or under way already: for stale reads, which any
// refresh under way answers.
func (c *Cache) refreshInBackground(key string) {
	c.refreshSoon(key, false, false, time.Time{}, bgTrace{trigger: triggerStale}, nil)
}

// RefreshInBackground recomputes key without blocking the caller, because
// something it is computed from changed, and calls done (when not nil)
// with the outcome. Asked again while the key waits for a slot, it is
// refreshed once; asked while its refresh is under way, it is refreshed
// again afterwards: that refresh may have read what the change replaced.
// Once the cache is closed, done is called with ErrClosed.
func (c *Cache) RefreshInBackground(key string, done func(error)) {
	c.refreshSoon(key, true, false, time.Time{}, bgTrace{trigger: triggerRule}, done)
}

// RefreshChanged is RefreshInBackground for a key whose source row changed
// at asked (the follower of the source tables asks, see Dispatch). Unlike
// other refreshes it computes only a key that someone holds: this
// gateway's tier, a subscriber here, or the store; a key stored nowhere
// has no value to be out of date, and computing it would only fill the
// store with keys nobody reads. Its watchers on other gateways are told
// (Change.SourceChanged) and read it again. It takes no compute lease:
// the follower hands each key's change to one gateway, so no other
// refreshes it for this change.
//
// ctx is not the refresh's (it runs after RefreshChanged returns): its
// span, when it has one (a dispatch, an assignment from another gateway),
// is the parent of the refresh's.
func (c *Cache) RefreshChanged(ctx context.Context, key string, asked time.Time, done func(error)) {
	c.refreshSoon(key, true, true, asked, bgTrace{trigger: triggerSourceChange, parent: trace.SpanContextFromContext(ctx)}, done)
}

func (c *Cache) refreshSoon(key string, afterChange, sourceChanged bool, asked time.Time, bt bgTrace, done func(error)) {
	c.bgMu.Lock()
	if c.life.Closing() {
		c.bgMu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	now := c.clock.Now()
	if asked.IsZero() || asked.After(now) {
		asked = now
	}
	if j, waiting := c.bgPending[key]; waiting {
		if done != nil {
			j.done = append(j.done, done)
		}
		if asked.After(j.asked) {
			j.asked = asked
		}
		j.sourceChanged = j.sourceChanged || sourceChanged
		c.bgMu.Unlock()
		return
	}
	if c.bgRunning[key] > 0 && !afterChange {
		c.bgMu.Unlock()
		return // a stale read: the refresh under way serves it
	}
	j := &bgJob{asked: asked, sourceChanged: sourceChanged, trace: bt}
	if done != nil {
		j.done = append(j.done, done)
	}
	if !c.life.Enter() { // Close began since the check above
		c.bgMu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	c.bgPending[key] = j
	c.bgMu.Unlock()
	ctx := c.life.Context()
	go func() {
		defer c.life.Leave()
		select {
		case c.bgSlots <- struct{}{}:
		case <-ctx.Done():
			c.bgMu.Lock()
			delete(c.bgPending, key)
			c.bgMu.Unlock()
			for _, f := range j.done {
				f(ErrClosed)
			}
			return
		}
		defer func() { <-c.bgSlots }()
		c.bgMu.Lock()
		delete(c.bgPending, key) // from now on a change asks again
		c.bgRunning[key]++
		asked, sourceChanged := j.asked, j.sourceChanged
		c.bgMu.Unlock()
		ctx, span := c.refreshSpan(ctx, key, j.trace)
		var (
			r   Result
			err error
		)
		if !sourceChanged {
			r, err = c.RefreshAskedAt(ctx, key, asked)
		} else if c.held(ctx, key) {
			r, err = c.refresh(ctx, key, asked, true)
		} else {
			span.SetAttributes(attribute.Bool("kck.skipped", true))
		}
		if err == nil && r.notStored != nil {
			err = fmt.Errorf("%w: %s: %w", ErrNotStored, key, r.notStored)
		}
		tracing.End(span, err)
		c.bgMu.Lock()
		if c.bgRunning[key]--; c.bgRunning[key] == 0 {
			delete(c.bgRunning, key)
		}
		c.bgMu.Unlock()
		if ctx.Err() != nil {
			err = ErrClosed
		} else if len(j.done) == 0 && err != nil {
			// A source that is down fails every key's refresh: log the first
			// and then one every 10 s, with how many were not logged.
			if n, ok := c.throttle("background_refresh", 10*time.Second); ok {
				c.opts.Logger.WarnContext(ctx, "background refresh failed; serving the stale value", "key", key, "err", err, "not_logged_since_last", n)
			}
		}
		for _, f := range j.done {
			f(err)
		}
	}()
}

// held reports whether anyone holds key: this gateway's tier, a watcher
// here, or the store. A store that fails counts as holding it: refreshing
// in vain beats serving a value its source replaced. When nobody does,
// the other gateways are told, so that a subscriber of the key elsewhere
// (whose read found no data, say) reads it again.
func (c *Cache) held(ctx context.Context, key string) bool {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return true // the refresh reports the error
	}
	if _, ok := c.mem.GetIfPresent(canonical); ok || c.watch.has(canonical) {
		return true
	}
	switch _, err := c.store.Get(ctx, canonical); {
	case err == nil:
		return true
	case !errors.Is(err, ErrNotFound):
		c.storeFailed(ctx, "get", canonical, err)
		return true
	}
	c.forgetNegative(canonical)
	c.instances.remove(canonical)
	c.announce(Change{Key: canonical, SourceChanged: true})
	if k.Name != "" {
		c.m.refreshes.WithLabelValues(k.Name, "skipped").Inc()
	}
	return false
}
