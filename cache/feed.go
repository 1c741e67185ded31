package cache

import (
	"context"
	"time"

	"github.com/maypok86/otter/v2"
)

// Change says that a key got a new value, or was deleted, at a version.
type Change struct {
	Key     string
	Version uint64
	// Origin is the Owner of the cache that made the change.
	Origin string
	// At is when the change was published, on the publisher's clock.
	At time.Time
}

// ChangeFeed is implemented by stores that several gateways share. Every
// cache publishes each value it writes and each key it deletes; every cache
// polls the feed and drops the in-process copies that a change from another
// gateway has made old. That bounds how long a gateway serves a value after
// another replaced it: the poll interval plus the store's write latency.
//
// Changes returns the changes published at or after since, in any order, and
// may return a change more than once: applying one is idempotent (only
// in-process entries with a lower version are dropped). A store keeps
// changes for at least a few minutes.
type ChangeFeed interface {
	Publish(ctx context.Context, ch Change) error
	Changes(ctx context.Context, since time.Time) ([]Change, error)
}

// feedOverlap is how far back each poll reaches before the previous one, so
// that a change published by a gateway whose clock runs behind, or that
// became readable late, is still seen. Re-reading is harmless.
const feedOverlap = 2 * time.Second

func (c *Cache) publish(ctx context.Context, key string, version uint64) {
	c.notify(key, version)
	if c.feed == nil {
		return
	}
	err := c.feed.Publish(ctx, Change{Key: key, Version: version, Origin: c.opts.Owner, At: c.clock.Now()})
	if err != nil {
		c.storeFailed("publish", key, err)
	}
}

// followFeed polls the change feed until the cache closes.
func (c *Cache) followFeed() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.FeedInterval)
	defer t.Stop()
	since := c.clock.Now().Add(-feedOverlap)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		started := c.clock.Now()
		ctx, cancel := context.WithTimeout(c.ctx, 5*c.opts.FeedInterval+time.Second)
		changes, err := c.feed.Changes(ctx, since)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.storeFailed("changes", "", err)
			}
			continue
		}
		since = started.Add(-feedOverlap)
		for _, ch := range changes {
			if ch.Origin != c.opts.Owner {
				c.applyChange(ch)
				c.notify(ch.Key, ch.Version)
			}
		}
	}
}

// applyChange drops the in-process copy of ch.Key when ch makes it old. The
// next read takes the new value from the store.
func (c *Cache) applyChange(ch Change) {
	dropped := false
	c.mem.Compute(ch.Key, func(e *Entry, found bool) (*Entry, otter.ComputeOp) {
		if found && e.Version < ch.Version {
			dropped = true
			return nil, otter.InvalidateOp
		}
		return e, otter.CancelOp
	})
	// Another gateway stored or deleted the key: whatever this one
	// remembered of its absence is out of date.
	c.forgetNegative(ch.Key)
	if dropped {
		c.m.feedDrops.Inc()
		c.m.feedLag.Observe(max(0, c.clock.Now().Sub(ch.At).Seconds()))
	}
}
