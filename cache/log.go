package cache

import (
	"context"
	"time"
)

// storeFailed counts and logs a store call that failed; ctx is the
// caller's, so that the line names its trace.
func (c *Cache) storeFailed(ctx context.Context, op, key string, err error) {
	c.m.storeErrors.WithLabelValues(op).Inc()
	// A store that is down fails every call: log the first failure of an
	// operation and then at most one every 10 s, with how many were not
	// logged. The metric counts them all.
	if n, ok := c.throttle(op, 10*time.Second); ok {
		c.opts.Logger.ErrorContext(ctx, "store call failed", "op", op, "key", key, "err", err, "not_logged_since_last", n)
	}
}

type logState struct {
	at         time.Time
	suppressed int
}
