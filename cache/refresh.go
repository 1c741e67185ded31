package cache

import (
	"context"
	"fmt"

	"github.com/kck-go/kck/primers"
)

// refreshInBackground recomputes key without blocking the caller, at most
// once at a time per key and BackgroundRefreshes at a time in all.
func (c *Cache) refreshInBackground(key string) {
	c.bgMu.Lock()
	if _, busy := c.bgPending[key]; busy || c.ctx.Err() != nil {
		c.bgMu.Unlock()
		return
	}
	c.bgPending[key] = struct{}{}
	c.wg.Add(1)
	c.bgMu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			c.bgMu.Lock()
			delete(c.bgPending, key)
			c.bgMu.Unlock()
		}()
		select {
		case c.bgSlots <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		defer func() { <-c.bgSlots }()
		if _, err := c.Refresh(c.ctx, key); err != nil && c.ctx.Err() == nil {
			c.opts.Logger.Warn("background refresh failed; serving the stale value", "key", key, "err", err)
		}
	}()
}

// Refresh recomputes key now, whatever the cache holds, and refreshes its
// dependents after it. On failure the old value stays in place.
func (c *Cache) Refresh(ctx context.Context, key string) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if k.Name == "" {
		return Result{}, &primers.KeyError{Key: key, Reason: "only registered products can be refreshed", Err: primers.ErrUnknownProduct}
	}
	// A refresh always runs the primer: it spends the request's budget.
	if b := budgetFrom(ctx); !takeOK(b, "refresh\x00"+canonical) {
		c.m.missRefused.Inc()
		return Result{}, fmt.Errorf("%w: %s was not refreshed: this request already caused %d primer runs, the most one may", ErrTooManyMisses, canonical, b.max)
	}
	var floor uint64
	if e, ok := c.mem.GetIfPresent(canonical); ok {
		floor = e.Version
	}
	// Refreshes of one key share a flight apart from misses: a refresh must
	// start after the change that asked for it, so it cannot join a miss that
	// began earlier.
	ch := c.flight.DoChan("refresh\x00"+canonical, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.PrimerTimeout)
		defer cancel()
		r, err := c.compute(fctx, k, canonical, floor, false)
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		c.m.refreshes.WithLabelValues(k.Name, outcome).Inc() // once per computation, however many asked
		return loadResult{r: r, err: err}, nil
	})
	var lr loadResult
	select {
	case res := <-ch:
		lr = res.Val.(loadResult)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	if lr.err == nil {
		c.cascade(canonical)
	}
	return lr.r, lr.err
}

// productNames lists the registered products, for their counters.
func productNames(reg *primers.Registry) []string {
	if reg == nil {
		return nil
	}
	ps := reg.Products()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func takeOK(b *missBudget, key string) bool {
	ok, _ := b.take(key)
	return ok
}
