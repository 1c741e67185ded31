package cache

import "time"

// The one background refresh path: stale reads, dependency cascades,
// source changes and refresh rules all recompute here, BackgroundRefreshes
// at a time in all, each through Refresh (the path every refresh takes,
// background or not).

// bgJob is a key waiting for a background slot, and who wants to hear how
// its refresh went.
type bgJob struct {
	done  []func(error)
	asked time.Time // when the last of those it answers asked
}

// refreshInBackground recomputes key, served stale meanwhile, unless its
// refresh is waiting or under way already: for stale reads, which any
// refresh under way answers.
func (c *Cache) refreshInBackground(key string) { c.refreshSoon(key, false, nil) }

// RefreshInBackground recomputes key without blocking the caller, because
// something it is computed from changed, and calls done (when not nil)
// with the outcome. Asked again while the key waits for a slot, it is
// refreshed once; asked while its refresh is under way, it is refreshed
// again afterwards: that refresh may have read what the change replaced.
// done is not called once the cache is closed.
func (c *Cache) RefreshInBackground(key string, done func(error)) { c.refreshSoon(key, true, done) }

func (c *Cache) refreshSoon(key string, afterChange bool, done func(error)) {
	c.bgMu.Lock()
	if c.ctx.Err() != nil {
		c.bgMu.Unlock()
		return
	}
	now := c.clock.Now()
	if j, waiting := c.bgPending[key]; waiting {
		if done != nil {
			j.done = append(j.done, done)
		}
		if now.After(j.asked) {
			j.asked = now
		}
		c.bgMu.Unlock()
		return
	}
	if c.bgRunning[key] > 0 && !afterChange {
		c.bgMu.Unlock()
		return // a stale read: the refresh under way serves it
	}
	j := &bgJob{asked: now}
	if done != nil {
		j.done = append(j.done, done)
	}
	c.bgPending[key] = j
	c.wg.Add(1)
	c.bgMu.Unlock()
	go func() {
		defer c.wg.Done()
		select {
		case c.bgSlots <- struct{}{}:
		case <-c.ctx.Done():
			c.bgMu.Lock()
			delete(c.bgPending, key)
			c.bgMu.Unlock()
			return
		}
		defer func() { <-c.bgSlots }()
		c.bgMu.Lock()
		delete(c.bgPending, key) // from now on a change asks again
		c.bgRunning[key]++
		asked := j.asked
		c.bgMu.Unlock()
		_, err := c.RefreshAskedAt(c.ctx, key, asked)
		c.bgMu.Lock()
		if c.bgRunning[key]--; c.bgRunning[key] == 0 {
			delete(c.bgRunning, key)
		}
		c.bgMu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		if len(j.done) == 0 && err != nil {
			// A source that is down fails every key's refresh: log the first
			// and then one every 10 s, with how many were not logged.
			if n, ok := c.throttle("background_refresh", 10*time.Second); ok {
				c.opts.Logger.Warn("background refresh failed; serving the stale value", "key", key, "err", err, "not_logged_since_last", n)
			}
		}
		for _, f := range j.done {
			f(err)
		}
	}()
}
