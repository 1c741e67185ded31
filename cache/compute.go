package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/maypok86/otter/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/tracing"
)

// compute runs the primer for k under the key's lease and stores the result.
// A value already stored by another process with a version above minVersion
// is taken instead of computing again. afterMiss says the caller found
// nothing in the store: then the store is read again once the lease is
// held, since another gateway may have stored the value and released the
// lease between that read and our Acquire (a refresh must not do this: it
// recomputes whatever is stored). A refresh takes another process's value
// only if it was computed at notBefore or later (clocks are compared across
// gateways: a skew costs a computation or, the other way, serves a value
// that is older by the skew).
func (c *Cache) compute(ctx context.Context, k primers.Key, key string, minVersion uint64, afterMiss bool, notBefore time.Time) (r Result, err error) {
	p := c.reg.Product(k.Name)
	if p.Primer == nil {
		return Result{}, fmt.Errorf("%w: %s", ErrNotSet, key)
	}
	lease := "prime/" + key
	// The lease's span covers waiting for it and holding it: the primer
	// run and the store's write are its children.
	ctx, span := c.span(ctx, "kck.lease")
	polls := 0
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("kck.lease", lease), attribute.Int("kck.lease.polls", polls), tracing.AttrTier.String(r.Tier.String()))
		}
		tracing.End(span, err)
	}()
	for waited := false; ; waited = true {
		got, err := c.store.Acquire(ctx, lease, c.opts.Owner, c.opts.LeaseTTL)
		if err != nil {
			// Without the store we cannot coordinate; computing twice beats
			// not serving.
			c.storeFailed(ctx, "acquire", key, err)
			got = true
		}
		if got {
			break
		}
		if !waited {
			c.m.leaseWaits.Inc()
			span.AddEvent("waiting for another gateway's computation")
		}
		polls++
		// Another process is computing this key: wait for its value.
		t := time.NewTimer(c.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, &PrimerError{Product: k.Name, Key: key, Err: fmt.Errorf("waiting for another gateway: %w", ctx.Err())}
		case <-t.C:
		}
		if e, err := c.store.Get(ctx, key); err == nil && e.Version > minVersion && !e.Expired(c.clock.Now()) && !e.ComputedAt.Before(notBefore) {
			return Result{Entry: c.remember(ctx, &e), Tier: TierStore}, nil
		}
	}
	defer func() {
		if err := c.store.Release(context.WithoutCancel(ctx), lease, c.opts.Owner); err != nil {
			c.storeFailed(ctx, "release", key, err)
		}
	}()
	absent := false
	if afterMiss {
		e, err := c.store.Get(ctx, key)
		if err == nil && e.Version > minVersion && !e.Expired(c.clock.Now()) {
			return Result{Entry: c.remember(ctx, &e), Tier: TierStore}, nil
		}
		absent = errors.Is(err, ErrNotFound)
	}
	return c.computeHeld(ctx, k, key, minVersion, absent)
}

// computeHeld runs the primer for k and stores the result, with the
// coordination across gateways (a lease) already held by the caller.
// absent says the caller read the key under that lease and the store had
// none: the write may then skip Put's version read (see NewPutter).
func (c *Cache) computeHeld(ctx context.Context, k primers.Key, key string, minVersion uint64, absent bool) (Result, error) {
	p := c.reg.Product(k.Name)
	if p.Primer == nil {
		return Result{}, fmt.Errorf("%w: %s", ErrNotSet, key)
	}
	version := c.nextVersion(minVersion)
	started := c.clock.Now()
	pctx, span := c.span(ctx, "kck.primer", trace.WithAttributes(tracing.AttrProduct.String(k.Name), tracing.AttrKey.String(key)))
	value, err := c.runPrimer(pctx, p, k, key)
	tracing.End(span, err)
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: key, Err: err}
	}
	e := c.newEntry(p, key, value, version, started)
	return Result{Entry: e, Tier: TierComputed, notStored: c.put(ctx, e, absent)}, nil
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
// counted, logged and returned; the value is still served from this
// gateway. absent: see computeHeld. A value computed before its product's
// statement changed (a reload fenced it) is neither stored nor kept.
func (c *Cache) put(ctx context.Context, e *Entry, absent bool) error {
	if c.fenced(e) {
		return nil
	}
	write := c.store.Put
	if np, ok := c.store.(NewPutter); ok && absent {
		write = np.PutNew
	}
	sctx, span := c.span(ctx, "kck.cache.store.put", trace.WithAttributes(tracing.AttrKey.String(e.Key)))
	err := write(sctx, *e)
	tracing.End(span, err)
	if err != nil {
		c.storeFailed(ctx, "put", e.Key, err)
	}
	c.forgetNegative(e.Key)
	c.remember(ctx, e)
	c.publish(e)
	if c.opts.OnStored != nil {
		c.opts.OnStored(e.Key)
	}
	return err
}

// remember keeps e in the in-process tier unless it holds a newer version
// (a slower reader must not put back a value that a change replaced), and
// returns the entry it holds. Nor is e kept when it is older than a version
// announced while this gateway did not hold the key, or when the tier was
// dropped since the work that found e began (ctx, see withGen): a read or
// a computation under way then may have found what was replaced, and its
// value would be served, unflagged, until the key changed again. The
// caller still gets e.
func (c *Cache) remember(ctx context.Context, e *Entry) *Entry {
	if c.superseded(ctx, e) {
		return e
	}
	// e is not shared yet: every caller made it. Its product's counters
	// travel with it, so that a hit counts them without a lookup.
	e.reads = c.m.productOf(e.Key)
	c.instances.add(e.Key, e.ExpiresAt)
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
			c.opts.Logger.ErrorContext(ctx, "primer panicked", "product", p.Name, "key", key, "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			err = fmt.Errorf("primer panicked: %v", rec)
		}
		c.m.primerSeconds.WithLabelValues(p.Name).Observe(time.Since(start).Seconds())
		// No data for these parameters, or parameters the primer refuses,
		// are its answers (NOT_FOUND, BAD_USER_INPUT), not its failures:
		// counted as errors, any client could set off a product's error
		// alert (and the console's error count) by asking for ids that do
		// not exist.
		if err != nil && !errors.Is(err, primers.ErrNoData) && !errors.Is(err, primers.ErrBadInput) {
			c.m.primerErrors.WithLabelValues(p.Name).Inc()
			c.logPrimerFailure(ctx, p.Name, key, err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.opts.PrimerTimeout)
	defer cancel()
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
