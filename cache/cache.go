// Package cache is KCK's two-tier product cache: a bounded in-process tier in
// front of a shared Store, filled by primers on a miss.
//
// The read path (Get):
//  1. In-process hit, fresh: returned with no store or primer call.
//  2. Store hit, fresh: fills the in-process tier.
//  3. Soft-expired hit: served now, flagged stale; a refresh runs in the background.
//  4. Miss or hard-expired: the primer runs once per key in this process
//     (singleflight) and once across processes (a lease in the store); the
//     others wait for that value.
//  5. Primer failure: a stale value, when there is one, stays served and
//     flagged stale; otherwise the caller gets a *PrimerError naming the product.
//
// Every value carries a version (see Entry.Version) that only moves forward.
package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/kck-go/kck/primers"
)

// Tier says where a result came from.
type Tier uint8

// The tiers.
const (
	TierMemory Tier = iota + 1
	TierStore
	TierComputed
)

func (t Tier) String() string {
	switch t {
	case TierMemory:
		return "memory"
	case TierStore:
		return "store"
	case TierComputed:
		return "computed"
	}
	return "unknown"
}

// Result is a product value with its freshness.
type Result struct {
	*Entry
	// Stale is set when the value is past its soft expiry, or kept after a
	// failed refresh.
	Stale bool
	Tier  Tier
}

// Errors returned by the cache. Key errors wrap the primers sentinels.
var (
	// ErrNotSet: the product has no primer and no value was Set (KCK's "key not set").
	ErrNotSet = errors.New("key not set")
	// ErrVersionMismatch: CompareAndSet found another version.
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrCycle: a primer read a product that is already being computed
	// further up the same chain of reads.
	ErrCycle = errors.New("dependency cycle")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache closed")
)

// PrimerError reports a failed computation with no stale value to serve.
type PrimerError struct {
	Product string
	Key     string
	Err     error
}

func (e *PrimerError) Error() string {
	return fmt.Sprintf("primer %s failed for %s: %v", e.Product, e.Key, e.Err)
}

func (e *PrimerError) Unwrap() error { return e.Err }

// Cache is safe for concurrent use. Create it with New and stop it with Close.
type Cache struct {
	opts  Options
	reg   *primers.Registry
	store Store
	clock Clock
	mem   *otter.Cache[string, *Entry]
	neg   *otter.Cache[string, negEntry] // nil when NegativeTTL < 0
	m     *metrics

	flight      singleflight.Group // per-key misses
	lastVersion atomic.Uint64

	deps  *dependencies
	feed  ChangeFeed // nil when the store is not shared
	watch watchers   // subscribers of keys (see Watch)

	logMu      sync.Mutex
	lastLogged map[string]logState // by store operation

	bgMu      sync.Mutex
	bgPending map[string]struct{}
	bgSlots   chan struct{}

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// entryOverhead approximates the bytes an in-process entry costs beyond its
// key and value (the Entry struct, otter's node, map slot).
const entryOverhead = 160

// New returns a cache over opts.Store.
func New(opts Options) (*Cache, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	mem, err := otter.New(&otter.Options[string, *Entry]{
		MaximumWeight: opts.MaxMemoryBytes,
		Weigher: func(k string, e *Entry) uint32 {
			w := uint64(len(k)) + uint64(len(e.Value)) + entryOverhead
			if w > 1<<32-1 {
				return 1<<32 - 1
			}
			return uint32(w)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: in-process tier: %w", err)
	}
	var neg *otter.Cache[string, negEntry]
	if opts.NegativeTTL > 0 {
		if neg, err = newNegativeCache(opts.NegativeCacheBytes, opts.NegativeTTL); err != nil {
			return nil, fmt.Errorf("cache: negative cache: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		neg:        neg,
		opts:       opts,
		reg:        opts.Registry,
		store:      opts.Store,
		clock:      opts.Clock,
		mem:        mem,
		m:          newMetrics(opts.Registerer, productNames(opts.Registry)),
		deps:       newDependencies(),
		lastLogged: map[string]logState{},
		bgPending:  map[string]struct{}{},
		bgSlots:    make(chan struct{}, opts.BackgroundRefreshes),
		ctx:        ctx,
		cancel:     cancel,
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newFreshnessCollector(c)); err != nil {
			cancel()
			return nil, fmt.Errorf("cache: metrics: %w", err)
		}
	}
	if feed, ok := opts.Store.(ChangeFeed); ok && opts.FeedInterval > 0 {
		c.feed = feed
		c.wg.Add(1)
		go c.followFeed()
	}
	return c, nil
}

// Close stops background refreshes and waits for them. It does not close the
// store, which the caller opened.
func (c *Cache) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Registry returns the product declarations the cache serves.
func (c *Cache) Registry() *primers.Registry { return c.reg }

// Now is the time on the cache's clock (expiries are on it).
func (c *Cache) Now() time.Time { return c.clock.Now() }

// Store returns the shared tier.
func (c *Cache) Store() Store { return c.store }

// Get returns the product for key, computing it on a miss.
func (c *Cache) Get(ctx context.Context, key string) (Result, error) {
	// The hit path: one map lookup and a clock read, no allocation. Only
	// canonical keys are ever stored, so a raw key found here needs no parse.
	if e, ok := c.mem.GetIfPresent(key); ok {
		now := c.clock.Now()
		if !e.Expired(now) {
			if !e.Stale(now) {
				c.m.hitMemory.Inc()
				if p := e.reads; p != nil {
					p.hitMemory.Inc()
				}
				return Result{Entry: e, Tier: TierMemory}, nil
			}
			c.m.stale.Inc()
			if p := e.reads; p != nil {
				p.stale.Inc()
			}
			if !now.Before(e.retryAt) {
				c.refreshInBackground(key)
			}
			return Result{Entry: e, Stale: true, Tier: TierMemory}, nil
		}
		c.mem.Invalidate(key)
	}
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
// store. The gateway's response cache uses it to check that a cached response
// still reflects the current version of every product it read.
func (c *Cache) Peek(key string) (version uint64, ok bool) {
	e, ok := c.mem.GetIfPresent(key)
	if !ok {
		return 0, false
	}
	now := c.clock.Now()
	if e.Expired(now) || e.Stale(now) {
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
func (c *Cache) GetMany(ctx context.Context, keys []string) []ItemResult {
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
			out[i].Result, out[i].Err = c.Get(ctx, key)
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
	return Result{Entry: e, Tier: TierMemory}, true
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
	ok, charged := b.take(key)
	if !ok {
		return c.loadStored(ctx, key, b)
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
		// The flight outlives any one caller, so it must not die with the
		// first caller's context; it keeps its values (the chain of reads).
		// Nor does it spend the caller's miss budget: the reads a primer
		// makes are the product's work, shared by every waiting caller.
		fctx, cancel := context.WithTimeout(WithMissBudget(context.WithoutCancel(ctx), 0), c.opts.PrimerTimeout)
		defer cancel()
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
	e, err := c.store.Get(ctx, key)
	switch {
	case err == nil && !e.Expired(c.clock.Now()):
		ep := c.remember(&e)
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
		c.storeFailed("get", key, err)
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
		return c.compute(ctx, k, key, 0, true)
	}
	p.miss.Inc()
	start := time.Now()
	r, err := c.compute(ctx, k, key, 0, true)
	p.missSeconds.Observe(time.Since(start).Seconds())
	return r, err
}

// compute runs the primer for k under the key's lease and stores the result.
// A value already stored by another process with a version above minVersion
// is taken instead of computing again. afterMiss says the caller found
// nothing in the store: then the store is read again once the lease is
// held, since another gateway may have stored the value and released the
// lease between that read and our Acquire (a refresh must not do this: it
// recomputes whatever is stored).
func (c *Cache) compute(ctx context.Context, k primers.Key, key string, minVersion uint64, afterMiss bool) (Result, error) {
	p := c.reg.Product(k.Name)
	if p.Primer == nil {
		return Result{}, fmt.Errorf("%w: %s", ErrNotSet, key)
	}
	lease := "prime/" + key
	for waited := false; ; waited = true {
		got, err := c.store.Acquire(ctx, lease, c.opts.Owner, c.opts.LeaseTTL)
		if err != nil {
			// Without the store we cannot coordinate; computing twice beats
			// not serving.
			c.storeFailed("acquire", key, err)
			got = true
		}
		if got {
			break
		}
		if !waited {
			c.m.leaseWaits.Inc()
		}
		// Another process is computing this key: wait for its value.
		t := time.NewTimer(c.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, &PrimerError{Product: k.Name, Key: key, Err: fmt.Errorf("waiting for another gateway: %w", ctx.Err())}
		case <-t.C:
		}
		if e, err := c.store.Get(ctx, key); err == nil && e.Version > minVersion && !e.Expired(c.clock.Now()) {
			return Result{Entry: c.remember(&e), Tier: TierStore}, nil
		}
	}
	defer func() {
		if err := c.store.Release(context.WithoutCancel(ctx), lease, c.opts.Owner); err != nil {
			c.storeFailed("release", key, err)
		}
	}()
	if afterMiss {
		if e, err := c.store.Get(ctx, key); err == nil && e.Version > minVersion && !e.Expired(c.clock.Now()) {
			return Result{Entry: c.remember(&e), Tier: TierStore}, nil
		}
	}
	return c.computeHeld(ctx, k, key, minVersion)
}

// computeHeld runs the primer for k and stores the result, with the
// coordination across gateways (a lease) already held by the caller.
func (c *Cache) computeHeld(ctx context.Context, k primers.Key, key string, minVersion uint64) (Result, error) {
	p := c.reg.Product(k.Name)
	if p.Primer == nil {
		return Result{}, fmt.Errorf("%w: %s", ErrNotSet, key)
	}
	version := c.nextVersion(minVersion)
	started := c.clock.Now()
	value, err := c.runPrimer(ctx, p, k, key)
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: key, Err: err}
	}
	e := c.newEntry(p, key, value, version, started)
	c.put(ctx, e)
	return Result{Entry: e, Tier: TierComputed}, nil
}

func (c *Cache) newEntry(p *primers.Product, key string, value []byte, version uint64, computedAt time.Time) *Entry {
	e := &Entry{Key: key, Value: value, Version: version, ComputedAt: computedAt}
	if p != nil {
		if p.SoftTTL > 0 {
			e.StaleAt = computedAt.Add(p.SoftTTL)
		}
		if p.TTL > 0 {
			e.ExpiresAt = computedAt.Add(p.TTL)
		}
	}
	return e
}

// put writes e to the store and the in-process tier. A store failure is
// counted and logged; the value is still served from this gateway.
func (c *Cache) put(ctx context.Context, e *Entry) {
	if err := c.store.Put(ctx, *e); err != nil {
		c.storeFailed("put", e.Key, err)
	}
	c.forgetNegative(e.Key)
	c.remember(e)
	c.publish(ctx, e.Key, e.Version)
	if c.opts.OnStored != nil {
		c.opts.OnStored(e.Key)
	}
}

// remember keeps e in the in-process tier unless it holds a newer version
// (a slower reader must not put back a value that a change replaced), and
// returns the entry it holds.
func (c *Cache) remember(e *Entry) *Entry {
	// e is not shared yet: every caller made it. Its product's counters
	// travel with it, so that a hit counts them without a lookup.
	e.reads = c.m.productOf(e.Key)
	kept, _ := c.mem.Compute(e.Key, func(old *Entry, found bool) (*Entry, otter.ComputeOp) {
		if found && old.Version > e.Version {
			return old, otter.CancelOp
		}
		return e, otter.WriteOp
	})
	if kept == nil {
		return e
	}
	return kept
}

// runPrimer runs p's primer with panics recovered, and encodes the result.
func (c *Cache) runPrimer(ctx context.Context, p *primers.Product, k primers.Key, key string) (value []byte, err error) {
	c.m.primerRuns.WithLabelValues(p.Name).Inc()
	start := time.Now()
	defer func() {
		if rec := recover(); rec != nil {
			c.opts.Logger.Error("primer panicked", "product", p.Name, "key", key, "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			err = fmt.Errorf("primer panicked: %v", rec)
		}
		c.m.primerSeconds.WithLabelValues(p.Name).Observe(time.Since(start).Seconds())
		if err != nil {
			c.m.primerErrors.WithLabelValues(p.Name).Inc()
			c.logPrimerFailure(p.Name, key, err)
		}
	}()
	pctx := primers.WithReader(withChain(ctx, key), reader{c: c, parent: key})
	v, err := p.Primer.Prime(pctx, k)
	if err != nil {
		return nil, err
	}
	value, err = encode(v)
	if err != nil {
		return nil, err
	}
	if !p.AllowEmpty && isEmpty(value) {
		return nil, fmt.Errorf("%w: primer returned no results", primers.ErrNoData)
	}
	return value, nil
}

func encode(v any) ([]byte, error) {
	switch b := v.(type) {
	case json.RawMessage:
		if !json.Valid(b) {
			return nil, errors.New("primer returned invalid JSON")
		}
		return bytes.Clone(b), nil
	case []byte:
		if !json.Valid(b) {
			return nil, errors.New("primer returned invalid JSON")
		}
		return bytes.Clone(b), nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return out, nil
}

func isEmpty(v []byte) bool {
	v = bytes.TrimSpace(v)
	switch string(v) {
	case "null", "[]", "{}", `""`:
		return true
	}
	return false
}

// nextVersion returns a version above every version this process handed out
// and above floor: the wall clock in microseconds when it has moved on.
func (c *Cache) nextVersion(floor uint64) uint64 {
	for {
		last := c.lastVersion.Load()
		v := uint64(c.clock.Now().UnixMicro())
		if v <= last {
			v = last + 1
		}
		if v <= floor {
			v = floor + 1
		}
		if c.lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
}

func (c *Cache) storeFailed(op, key string, err error) {
	c.m.storeErrors.WithLabelValues(op).Inc()
	// A store that is down fails every call: log the first failure of an
	// operation and then at most one every 10 s, with how many were not
	// logged. The metric counts them all.
	if n, ok := c.throttle(op, 10*time.Second); ok {
		c.opts.Logger.Error("store call failed", "op", op, "key", key, "err", err, "not_logged_since_last", n)
	}
}

type logState struct {
	at         time.Time
	suppressed int
}

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
			// A source that is down fails every key's refresh: log the first
			// and then one every 10 s, with how many were not logged.
			if n, ok := c.throttle("background_refresh", 10*time.Second); ok {
				c.opts.Logger.Warn("background refresh failed; serving the stale value", "key", key, "err", err, "not_logged_since_last", n)
			}
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
	var pe *PrimerError
	if errors.As(lr.err, &pe) && floor != 0 {
		c.keepStale(canonical, floor)
	}
	return lr.r, lr.err
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

// Set stores value under key, for registered products and for plain keys
// with no primer alike (as KCK allowed).
func (c *Cache) Set(ctx context.Context, key string, value any) (Result, error) {
	return c.set(ctx, key, value, 0, false)
}

// CompareAndSet stores value only if the stored version equals expected
// (0: no value stored); otherwise it returns ErrVersionMismatch and leaves the
// stored value alone.
func (c *Cache) CompareAndSet(ctx context.Context, key string, value any, expected uint64) (Result, error) {
	return c.set(ctx, key, value, expected, true)
}

func (c *Cache) set(ctx context.Context, key string, value any, expected uint64, cas bool) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if k.Name == "" {
		if _, err := primers.SplitName(key); err != nil {
			return Result{}, err
		}
	}
	raw, err := encode(value)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", primers.ErrBadInput, err)
	}
	var floor uint64
	if cas {
		// The lease makes read-compare-write one step across gateways
		// without a lightweight transaction on the entry rows themselves.
		lease := "cas/" + canonical
		if err := c.acquireWait(ctx, lease); err != nil {
			return Result{}, err
		}
		defer func() {
			if err := c.store.Release(context.WithoutCancel(ctx), lease, c.opts.Owner); err != nil {
				c.storeFailed("release", canonical, err)
			}
		}()
		cur, err := c.store.Get(ctx, canonical)
		switch {
		case errors.Is(err, ErrNotFound):
			cur = Entry{}
		case err != nil:
			return Result{}, fmt.Errorf("compare-and-set %s: %w", canonical, err)
		}
		if cur.Version != expected {
			return Result{}, fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionMismatch, canonical, cur.Version, expected)
		}
		floor = cur.Version
	}
	var p *primers.Product
	if k.Name != "" {
		p = c.reg.Product(k.Name)
	}
	now := c.clock.Now()
	e := c.newEntry(p, canonical, raw, c.nextVersion(floor), now)
	if cas {
		if err := c.store.Put(ctx, *e); err != nil {
			return Result{}, fmt.Errorf("compare-and-set %s: %w", canonical, err)
		}
		c.forgetNegative(e.Key)
		c.remember(e)
		c.publish(ctx, e.Key, e.Version)
	} else {
		c.put(ctx, e)
	}
	c.cascade(canonical)
	return Result{Entry: e, Tier: TierComputed}, nil
}

func (c *Cache) acquireWait(ctx context.Context, lease string) error {
	for {
		got, err := c.store.Acquire(ctx, lease, c.opts.Owner, c.opts.LeaseTTL)
		if err != nil {
			return fmt.Errorf("acquire %s: %w", lease, err)
		}
		if got {
			return nil
		}
		t := time.NewTimer(c.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Invalidate removes key from the store and this gateway's in-process tier.
// A computation that started before the call cannot bring the old value back:
// its version is lower than the deletion's.
//
// A key of a product that is not registered is refused, with nothing
// written, unless a value is stored under it (see Set): a deletion writes a
// tombstone, and clients must not be able to grow the store with them.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return err
	}
	if k.Name == "" {
		switch _, err := c.store.Get(ctx, canonical); {
		case errors.Is(err, ErrNotFound):
			name, _ := primers.SplitName(key)
			return &primers.KeyError{Key: key, Reason: "no product named " + name + " and no value set", Err: primers.ErrUnknownProduct}
		case err != nil:
			return fmt.Errorf("invalidate %s: %w", canonical, err)
		}
	}
	c.forgetNegative(canonical)
	c.mem.Invalidate(canonical)
	version := c.nextVersion(0)
	if err := c.store.Delete(ctx, canonical, version); err != nil {
		return fmt.Errorf("invalidate %s: %w", canonical, err)
	}
	c.mem.Invalidate(canonical)
	c.publish(ctx, canonical, version)
	c.cascade(canonical)
	return nil
}

// Augment folds change into key's current value with the product's
// AugmentFunc. Without one, or when it returns primers.ErrCannotAugment, or
// when nothing is cached yet, the product is recomputed instead.
func (c *Cache) Augment(ctx context.Context, key string, change any) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if k.Name == "" {
		return Result{}, &primers.KeyError{Key: key, Reason: "only registered products can be augmented", Err: primers.ErrUnknownProduct}
	}
	p := c.reg.Product(k.Name)
	cur, ok := c.mem.GetIfPresent(canonical)
	if !ok {
		if e, err := c.store.Get(ctx, canonical); err == nil {
			cur, ok = &e, true
		}
	}
	if p.Augment == nil || !ok || cur.Expired(c.clock.Now()) {
		return c.Refresh(ctx, canonical)
	}
	version := c.nextVersion(cur.Version)
	started := c.clock.Now()
	v, err := p.Augment(ctx, k, cur.Value, change)
	if errors.Is(err, primers.ErrCannotAugment) {
		return c.Refresh(ctx, canonical)
	}
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: canonical, Err: fmt.Errorf("augment: %w", err)}
	}
	raw, err := encode(v)
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: canonical, Err: fmt.Errorf("augment: %w", err)}
	}
	e := c.newEntry(p, canonical, raw, version, started)
	c.put(ctx, e)
	c.cascade(canonical)
	return Result{Entry: e, Tier: TierComputed}, nil
}

// UpdateOutcome is what running an updater did.
type UpdateOutcome struct {
	// Result is the updater's own result for the client.
	Result any
	// Products are the affected products after their refresh, in the order
	// the updater named them (read-your-writes).
	Products []ItemResult
}

// Update runs the named updater and then refreshes or augments every product
// it reports as affected. An updater error is returned as is and nothing is
// refreshed; refresh failures are reported per product.
func (c *Cache) Update(ctx context.Context, name string, input json.RawMessage) (UpdateOutcome, error) {
	u, err := c.reg.Updater(name)
	if err != nil {
		return UpdateOutcome{}, err
	}
	res, err := u.Update(ctx, input)
	if err != nil {
		return UpdateOutcome{}, fmt.Errorf("updater %s: %w", name, err)
	}
	out := UpdateOutcome{Result: res.Result, Products: make([]ItemResult, len(res.Affected))}
	// The refreshes are the write's, named by the updater, not the
	// client's reads: they do not spend the request's miss budget.
	ctx = WithMissBudget(ctx, 0)
	for i, key := range res.Affected {
		out.Products[i].Key = key
		if change, ok := res.Changes[key]; ok {
			out.Products[i].Result, out.Products[i].Err = c.Augment(ctx, key, change)
		} else {
			out.Products[i].Result, out.Products[i].Err = c.Refresh(ctx, key)
		}
		if err := out.Products[i].Err; err != nil {
			c.opts.Logger.Warn("refresh after update failed", "updater", name, "key", key, "err", err)
		}
	}
	return out, nil
}

func takeOK(b *missBudget, key string) bool {
	ok, _ := b.take(key)
	return ok
}
