package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kck-go/kck/primers"
	"github.com/maypok86/otter/v2"
)

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
		// Like a miss's flight: a lease to wait out, then a primer run.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LeaseTTL+c.opts.PrimerTimeout)
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
	var pe *PrimerError
	if errors.As(lr.err, &pe) && floor != 0 {
		c.keepStale(canonical, floor)
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

// Retries of a failed refresh, started by reads of the value it kept, wait
// from retryMin, doubling, up to retryMax: a source that is down is not
// hammered, and one that is back is seen within retryMax.
const (
	retryMin = time.Second
	retryMax = 10 * time.Second
)

// keepStale flags the in-process value of key at version stale after a
// refresh of it failed: what it holds may be out of date (the refresh was
// asked for because its source changed, or its schedule says it is due),
// so clients see it flagged stale from now on, and a read of it starts
// another refresh, after a backoff. A newer version (another refresh that
// succeeded meanwhile) is left alone.
func (c *Cache) keepStale(key string, version uint64) {
	now := c.clock.Now()
	c.mem.Compute(key, func(old *Entry, found bool) (*Entry, otter.ComputeOp) {
		if !found || old.Version != version || old.Expired(now) {
			return old, otter.CancelOp
		}
		e := *old // readers share old: change a copy
		if e.StaleAt.IsZero() || e.StaleAt.After(now) {
			e.StaleAt = now
		}
		e.failedRefreshes++
		wait := retryMax
		if e.failedRefreshes < 5 {
			wait = min(retryMin<<(e.failedRefreshes-1), retryMax)
		}
		e.retryAt = now.Add(wait)
		return &e, otter.WriteOp
	})
}
