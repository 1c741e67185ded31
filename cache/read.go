package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/tracing"
)

// Get returns the product for key, computing it on a miss. When ctx
// records reads (WithReads), the result is recorded.
func (c *Cache) Get(ctx context.Context, key string) (Result, error) {
	r, err := c.get(ctx, key)
	if err == nil {
		c.Record(ctx, r)
	}
	return r, err
}

// get is Get without recording.
func (c *Cache) get(ctx context.Context, key string) (Result, error) {
	if c.tracer != nil && tracing.Recording(ctx) {
		return c.getTraced(ctx, primers.Key{}, key, false)
	}
	if r, ok := c.hit(key); ok {
		return r, nil
	}
	return c.getMissed(ctx, key)
}

// GetKey is Get for a key that the registry built (Registry.Key or
// ParseKey), such as a GraphQL field's: on a miss, the key is not parsed
// again from its string. A key made by hand, or of a product this cache's
// registry does not hold, is read as Get reads its string. It is
// recorded as Get is.
func (c *Cache) GetKey(ctx context.Context, k primers.Key) (Result, error) {
	r, err := c.getKey(ctx, k)
	if err == nil {
		c.Record(ctx, r)
	}
	return r, err
}

func (c *Cache) getKey(ctx context.Context, k primers.Key) (Result, error) {
	key := k.String()
	if c.tracer != nil && tracing.Recording(ctx) {
		return c.getTraced(ctx, k, key, true)
	}
	if r, ok := c.hit(key); ok {
		return r, nil
	}
	if !c.typed(k) {
		return c.getMissed(ctx, key)
	}
	return c.load(ctx, k, key)
}

// typed reports whether k, a key made by the registry, can be loaded as it
// is, without parsing its string again.
func (c *Cache) typed(k primers.Key) bool {
	p := c.reg.Product(k.Name)
	return p != nil && k.Checked() && len(k.Args) == len(p.KeyParams())
}

// getTraced is Get (GetKey when typed) in a sampled trace: the in-process
// lookup is a span of its own, as the store's read and the computation
// are. Kept apart so that an untraced hit costs what it did before
// tracing.
func (c *Cache) getTraced(ctx context.Context, k primers.Key, key string, typed bool) (Result, error) {
	_, span := c.tracer.Start(ctx, "kck.cache.memory", trace.WithAttributes(tracing.AttrKey.String(key)))
	r, ok := c.hit(key)
	span.SetAttributes(tracing.AttrHit.Bool(ok))
	if ok {
		span.SetAttributes(tracing.AttrStale.Bool(r.Stale))
	}
	span.End()
	if ok {
		return r, nil
	}
	if typed && c.typed(k) {
		return c.load(ctx, k, key)
	}
	return c.getMissed(ctx, key)
}

// hit is the hit path: one map lookup and a clock read, no allocation. Only
// canonical keys are ever stored, so a raw key found here needs no parse. A
// stale value is served and refreshed in the background; an expired one is
// dropped.
func (c *Cache) hit(key string) (Result, bool) {
	e, ok := c.mem.GetIfPresent(key)
	if !ok {
		return Result{}, false
	}
	now := c.clock.Now()
	if !e.Expired(now) {
		if !e.Stale(now) {
			c.m.hitMemory.Inc()
			if p := e.reads; p != nil {
				p.hitMemory.Inc()
			}
			// Cut off from the bus, a value may have been replaced
			// elsewhere unseen: say so.
			return Result{Entry: e, Tier: TierMemory, Stale: c.bus.down.Load()}, true
		}
		c.m.stale.Inc()
		if p := e.reads; p != nil {
			p.stale.Inc()
		}
		if !now.Before(e.retryAt) { // a failed refresh backs off
			c.refreshInBackground(key)
		}
		return Result{Entry: e, Stale: true, Tier: TierMemory}, true
	}
	c.mem.Invalidate(key)
	return Result{}, false
}

// getMissed is Get past an in-process miss: parse the key, look for its
// canonical form, load.
func (c *Cache) getMissed(ctx context.Context, key string) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if canonical != key {
		if r, ok := c.memFresh(canonical); ok {
			return r, nil
		}
	}
	return c.load(ctx, k, canonical)
}

// Peek returns the version of a fresh in-process entry without touching the
// store (none while the bus is down: see Bus). The gateway's response cache uses it to check that a cached response
// still reflects the current version of every product it read.
func (c *Cache) Peek(key string) (version uint64, ok bool) {
	return c.PeekAt(key, c.clock.Now())
}

// Epoch counts the changes of the in-process tier that can make a version
// Peek returned no longer current: every replacement of an entry and every
// removal (invalidation, a change from the bus, eviction for size), and
// the bus going down or coming back. An
// insert of an absent key does not count (it follows a removal, which
// did). While it has not moved, every Peek that succeeded still returns the
// same version or none (an entry being evicted may vanish a moment before
// the epoch moves: its version did not change), until the entry's own soft
// or hard expiry: a caller that
// checked a set of keys may skip checking them again (the response cache
// does).
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// PeekAt is Peek at the instant now (from Now): a caller checking many keys
// at once (the response cache checks every product of a response) reads
// the clock once, not per key.
func (c *Cache) PeekAt(key string, now time.Time) (version uint64, ok bool) {
	e, ok := c.mem.GetIfPresent(key)
	if !ok {
		return 0, false
	}
	if e.Expired(now) || e.Stale(now) || c.bus.down.Load() {
		return 0, false
	}
	return e.Version, true
}

// ItemResult is one result of GetMany.
type ItemResult struct {
	Result
	// Key is the key as asked for (Result.Entry is nil when Err is set).
	Key string
	Err error
}

// GetMany returns the products for keys in order, each with its own error.
// Each one read is recorded as Get records it, in order.
func (c *Cache) GetMany(ctx context.Context, keys []string) []ItemResult {
	out := c.getMany(ctx, keys)
	if ReadsFrom(ctx) != nil {
		for _, it := range out {
			if it.Err == nil {
				c.Record(ctx, it.Result)
			}
		}
	}
	return out
}

func (c *Cache) getMany(ctx context.Context, keys []string) []ItemResult {
	out := make([]ItemResult, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, key := range keys {
		out[i].Key = key
		if r, ok := c.memFresh(key); ok {
			out[i].Result = r
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i].Result, out[i].Err = c.get(ctx, key)
		}()
	}
	wg.Wait()
	return out
}

// memFresh returns a fresh in-process entry.
func (c *Cache) memFresh(key string) (Result, bool) {
	e, ok := c.mem.GetIfPresent(key)
	if !ok {
		return Result{}, false
	}
	now := c.clock.Now()
	if e.Expired(now) || e.Stale(now) {
		return Result{}, false
	}
	c.m.hitMemory.Inc()
	if p := e.reads; p != nil {
		p.hitMemory.Inc()
	}
	return Result{Entry: e, Tier: TierMemory, Stale: c.bus.down.Load()}, true
}

// resolve parses key. A registered product's key is made canonical; a key
// whose name is not registered is kept as it is, since Set accepts such keys.
func (c *Cache) resolve(key string) (primers.Key, string, error) {
	k, err := c.reg.ParseKey(key)
	if err == nil {
		return k, k.String(), nil
	}
	if errors.Is(err, primers.ErrUnknownProduct) {
		return primers.Key{}, key, nil
	}
	return primers.Key{}, "", err
}

type loadResult struct {
	r   Result
	err error
}

// load is the slow path: store, then primer, once per key at a time.
func (c *Cache) load(ctx context.Context, k primers.Key, key string) (Result, error) {
	if err := checkCycle(ctx, key); err != nil {
		return Result{}, err
	}
	if err, ok := c.negativeErr(key); ok {
		return Result{}, err
	}
	// A request whose miss budget is spent gets only what is stored.
	b := budgetFrom(ctx)
	ok, charged, refused := b.take(key)
	if !ok {
		return c.loadStored(ctx, key, refused)
	}
	// Only the caller whose function the flight runs may have run a
	// primer; the channel receive below orders this write before the read.
	led := false
	ch := c.flight.DoChan(key, func() (any, error) {
		led = true
		// Another caller may have filled the in-process tier between our
		// lookup and entering the flight: look again before doing work.
		if r, ok := c.memFresh(key); ok {
			return loadResult{r: r}, nil
		}
		if !c.life.Enter() {
			return loadResult{err: ErrClosed}, nil
		}
		defer c.life.Leave()
		// The flight outlives any one caller, so it must not die with the
		// first caller's context (only with the cache); it keeps its values
		// (the chain of reads).
		// Nor does it spend the caller's miss budget: the reads a primer
		// makes are the product's work, shared by every waiting caller.
		// It may wait out another gateway's compute lease (a dead one
		// holds it to its end), then run the primer, which runPrimer
		// bounds by PrimerTimeout: the flight's bound is the sum.
		// Nor are the products it reads the caller's reads.
		bound, release := c.life.Bind(WithMissBudget(withoutReads(context.WithoutCancel(ctx)), 0))
		defer release()
		fctx, cancel := context.WithTimeout(bound, c.opts.LeaseTTL+c.opts.PrimerTimeout)
		defer cancel()
		fctx = c.withGen(fctx)
		r, err := c.loadFromStoreOrCompute(fctx, k, key)
		if err != nil {
			c.rememberNegative(key, err)
		}
		return loadResult{r: r, err: err}, nil
	})
	select {
	case res := <-ch:
		lr := res.Val.(loadResult)
		if charged && (!led || (lr.err == nil && lr.r.Tier != TierComputed)) {
			b.refund(key) // another caller's computation, or no primer ran
		}
		return lr.r, lr.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// stored reads key from the store into the in-process tier; false when the
// store holds no live value. A soft-expired value is served stale and
// refreshed in the background. A store that fails is counted and logged,
// and reads as empty: it should not stop us serving.
func (c *Cache) stored(ctx context.Context, key string) (Result, bool) {
	sctx, span := c.span(ctx, "kck.cache.store.get")
	e, err := c.store.Get(sctx, key)
	r, ok := c.fromStore(ctx, key, e, err)
	if span.IsRecording() {
		span.SetAttributes(tracing.AttrKey.String(key), tracing.AttrHit.Bool(ok))
		if !errors.Is(err, ErrNotFound) {
			tracing.End(span, err)
			return r, ok
		}
	}
	span.End()
	return r, ok
}

// fromStore is stored with the store's answer for key already read.
func (c *Cache) fromStore(ctx context.Context, key string, e Entry, err error) (Result, bool) {
	switch {
	case err == nil && !e.Expired(c.clock.Now()):
		ep := c.remember(ctx, &e)
		p := c.m.productOf(key)
		if ep.Stale(c.clock.Now()) {
			c.m.stale.Inc()
			if p != nil {
				p.stale.Inc()
			}
			c.refreshInBackground(key)
			return Result{Entry: ep, Stale: true, Tier: TierStore}, true
		}
		c.m.hitStore.Inc()
		if p != nil {
			p.hitStore.Inc()
		}
		return Result{Entry: ep, Tier: TierStore}, true
	case err != nil && !errors.Is(err, ErrNotFound):
		c.storeFailed(ctx, "get", key, err)
	}
	return Result{}, false
}

func (c *Cache) loadFromStoreOrCompute(ctx context.Context, k primers.Key, key string) (Result, error) {
	if r, ok := c.stored(ctx, key); ok {
		return r, nil
	}
	c.m.miss.Inc()
	if k.Name == "" {
		name, _ := primers.SplitName(key)
		return Result{}, &primers.KeyError{Key: key, Reason: "no product named " + name + " and no value set", Err: primers.ErrUnknownProduct}
	}
	p := c.m.productOf(key)
	if p == nil {
		return c.compute(ctx, k, key, 0, true, time.Time{})
	}
	p.miss.Inc()
	start := time.Now()
	r, err := c.compute(ctx, k, key, 0, true, time.Time{})
	p.missSeconds.Observe(time.Since(start).Seconds())
	return r, err
}
