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
//
// The primer run that answers starts after Refresh was called: a refresh is
// asked for because something changed, and a run that began earlier may
// have read what the change replaced. Callers that ask while a run is under
// way share the one queued after it.
func (c *Cache) Refresh(ctx context.Context, key string) (Result, error) {
	return c.RefreshAskedAt(ctx, key, c.clock.Now())
}

// RefreshAskedAt is Refresh for a request made at asked, earlier: a run that
// started after asked answers it, on this gateway or another. The scheduler
// asks as of when a slot opens, so that gateways due at once share one run
// (and a background refresh is asked before it gets a slot).
func (c *Cache) RefreshAskedAt(ctx context.Context, key string, asked time.Time) (Result, error) {
	return c.refresh(ctx, key, asked, false)
}

// refresh is RefreshAskedAt; owned says that this gateway alone was asked
// to refresh key for its change (see Dispatch): the run takes no compute
// lease, which would only cost the store a lightweight transaction.
func (c *Cache) refresh(ctx context.Context, key string, asked time.Time, owned bool) (Result, error) {
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
	run := c.refreshRunFor(ctx, k, canonical, asked, owned)
	select {
	case <-run.done:
		return run.r, run.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// refreshRun is one primer run of a key for Refresh.
type refreshRun struct {
	ctx     context.Context // of the caller that asked first, without its cancellation
	owned   bool            // the first caller's: no compute lease (see refresh)
	asked   time.Time       // when the last of those it answers asked
	started time.Time       // zero while queued
	callers int             // how many it answers
	done    chan struct{}   // closed when r and err are set
	r       Result
	err     error
}

// refreshing is a key's refresh run under way and the one queued after it,
// shared by everyone who asks while the first runs.
type refreshing struct{ running, next *refreshRun }

// refreshRunFor returns the run that answers a refresh of key asked at
// asked: the one under way if it started after asked, else the one that
// starts now if none is under way, or the one queued after it.
func (c *Cache) refreshRunFor(ctx context.Context, k primers.Key, key string, asked time.Time, owned bool) *refreshRun {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	st := c.refreshes[key]
	if st != nil && st.running.started.After(asked) {
		st.running.callers++
		return st.running
	}
	if st != nil && st.next != nil {
		if asked.After(st.next.asked) {
			st.next.asked = asked
		}
		st.next.callers++
		return st.next
	}
	run := &refreshRun{ctx: context.WithoutCancel(ctx), owned: owned, asked: asked, callers: 1, done: make(chan struct{})}
	if st != nil {
		st.next = run
		return run
	}
	run.started = c.clock.Now()
	if !c.life.Enter() { // closed: nothing more runs
		run.err = ErrClosed
		close(run.done)
		return run
	}
	c.refreshes[key] = &refreshing{running: run}
	go func() {
		defer c.life.Leave()
		c.runRefreshes(k, key, run)
	}()
	return run
}

// runRefreshes runs run, then each run queued after it, one at a time.
func (c *Cache) runRefreshes(k primers.Key, key string, run *refreshRun) {
	for run != nil {
		c.runRefresh(k, key, run)
		c.refreshMu.Lock()
		st := c.refreshes[key]
		run, st.running, st.next = st.next, st.next, nil
		if run == nil {
			delete(c.refreshes, key)
		} else {
			run.started = c.clock.Now()
		}
		c.refreshMu.Unlock()
	}
}

func (c *Cache) runRefresh(k primers.Key, key string, run *refreshRun) {
	defer close(run.done)
	var floor uint64
	if e, ok := c.mem.GetIfPresent(key); ok {
		floor = e.Version
	}
	// Like a miss: a lease to wait out, then a primer run. Another
	// gateway's value answers only if its run started after the last of
	// those sharing this one asked (no one joins a run once it starts).
	// Gateways that see one change at once both ask before either starts:
	// one computes, the other takes its value.
	// Its context outlives its callers' (they share it), not the cache.
	bound, release := c.life.Bind(run.ctx)
	defer release()
	ctx, cancel := context.WithTimeout(bound, c.opts.LeaseTTL+c.opts.PrimerTimeout)
	defer cancel()
	ctx = c.withGen(ctx)
	if run.owned {
		run.r, run.err = c.computeHeld(ctx, k, key, floor, false)
	} else {
		run.r, run.err = c.compute(ctx, k, key, floor, false, run.asked)
	}
	outcome := "ok"
	if run.err != nil {
		outcome = "failed"
	}
	c.m.refreshes.WithLabelValues(k.Name, outcome).Inc() // once per computation, however many asked
	if run.err == nil {
		c.cascade(ctx, key)
	}
	var pe *PrimerError
	if errors.As(run.err, &pe) && floor != 0 {
		c.keepStale(key, floor)
	}
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
	ok, _, _ := b.take(key)
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
