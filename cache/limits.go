package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/kck-go/kck/primers"
)

// What one request, or one absent key, may make the cache do.
//
//   - A key whose primer said it has no data (primers.ErrNoData) or refused
//     its parameters (primers.ErrBadInput) is remembered for NegativeTTL:
//     reads within it get the same error without running the primer again.
//     A value stored for the key (computed, refreshed, set, invalidated here)
//     ends that at once. The negative cache is bounded by bytes.
//   - A request carries a miss budget (WithMissBudget): each key it reads
//     that is not in the in-process tier and has to be computed spends one.
//     Once it is spent, further keys are served from the store when stored
//     there and otherwise refused with ErrTooManyMisses, without running
//     their primers.
//   - "primer failed" is logged at most once per PrimerLogInterval per
//     product, with how many failures were not logged since.

// ErrTooManyMisses is returned for a key a request may not compute: it has
// already caused as many primer runs as its miss budget allows.
var ErrTooManyMisses = errors.New("too many cold keys in one request")

type budgetKey struct{}

// missBudget counts the primer runs one request may still cause. A key is
// charged once however many of the request's fields read it.
type missBudget struct {
	mu   sync.Mutex
	left int // with max <= 0: no bound
	max  int
	keys map[string]bool // charged keys
	gate MissGate        // the client's budget over time, or nil
}

// MissGate is a budget of misses beyond one request's: a client's, over
// time (package ratelimit). Take spends one miss or returns why not (an
// error shown to the client as it is); Refund gives back one that no
// primer run used.
type MissGate interface {
	Take() error
	Refund()
}

// WithMissBudget returns a context in which reads through the cache may run
// at most n primers (reads served from memory or the store are free). n <= 0
// means no bound. The budget is the request's: the reads a primer makes of
// other products are not counted against it.
func WithMissBudget(ctx context.Context, n int) context.Context {
	return WithMissBudgetGate(ctx, n, nil)
}

// WithMissBudgetGate is WithMissBudget with gate spent too, once for each
// key charged to the request (and refunded with it): a key the request may
// run but gate refuses is served from the store or refused with gate's
// error.
func WithMissBudgetGate(ctx context.Context, n int, gate MissGate) context.Context {
	if n <= 0 && gate == nil {
		return context.WithValue(ctx, budgetKey{}, (*missBudget)(nil))
	}
	return context.WithValue(ctx, budgetKey{}, &missBudget{left: n, max: n, keys: map[string]bool{}, gate: gate})
}

func budgetFrom(ctx context.Context) *missBudget {
	b, _ := ctx.Value(budgetKey{}).(*missBudget)
	return b
}

// take spends one miss on key: ok is false when none is left, and refused
// then says why; charged says this call spent it (false for a key already
// charged, and with no budget).
func (b *missBudget) take(key string) (ok, charged bool, refused error) {
	if b == nil {
		return true, false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.keys[key]:
		return true, false, nil
	case b.max > 0 && b.left <= 0:
		return false, false, fmt.Errorf("%w: this request already caused %d misses, the most one may", ErrTooManyMisses, b.max)
	}
	if b.gate != nil {
		if err := b.gate.Take(); err != nil {
			return false, false, err
		}
	}
	b.left--
	b.keys[key] = true
	return true, true, nil
}

// refund gives back the miss a take charged on key: no primer ran for it.
func (b *missBudget) refund(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys[key] {
		delete(b.keys, key)
		b.left++
		if b.gate != nil {
			b.gate.Refund()
		}
	}
}

// negEntry is a remembered primer refusal.
type negEntry struct {
	err   error
	msg   int // len(err.Error()), for the weigher
	until time.Time
}

func newNegativeCache(maxBytes uint64, ttl time.Duration) (*otter.Cache[string, negEntry], error) {
	return otter.New(&otter.Options[string, negEntry]{
		MaximumWeight: maxBytes,
		Weigher: func(k string, e negEntry) uint32 {
			return uint32(min(len(k)+e.msg+negOverhead, 1<<31))
		},
		// Otter drops entries on its own clock; expiry is decided by
		// c.clock in negative, so that tests can move time.
		ExpiryCalculator: otter.ExpiryWriting[string, negEntry](ttl),
	})
}

const negOverhead = 160

// negativeErr returns the remembered refusal of key, if there is one that has
// not expired.
func (c *Cache) negativeErr(key string) (error, bool) {
	if c.neg == nil {
		return nil, false
	}
	e, ok := c.neg.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if !c.clock.Now().Before(e.until) {
		c.neg.Invalidate(key)
		return nil, false
	}
	c.m.negativeHits.Inc()
	return e.err, true
}

// rememberNegative keeps err for key if it says the key has no data or bad
// parameters: errors that the same primer run again would repeat.
func (c *Cache) rememberNegative(key string, err error) {
	if c.neg == nil || !(errors.Is(err, primers.ErrNoData) || errors.Is(err, primers.ErrBadInput)) {
		return
	}
	c.neg.Set(key, negEntry{err: err, msg: len(err.Error()), until: c.clock.Now().Add(c.opts.NegativeTTL)})
}

// forgetNegative ends a remembered refusal: the key has a value now, or was
// invalidated so that the next read computes it.
func (c *Cache) forgetNegative(key string) {
	if c.neg != nil {
		c.neg.Invalidate(key)
	}
}

// loadStored serves key from the store only, for a request whose miss budget
// is spent.
func (c *Cache) loadStored(ctx context.Context, key string, refused error) (Result, error) {
	if r, ok := c.stored(c.withGen(ctx), key); ok {
		return r, nil
	}
	c.m.missRefused.Inc()
	return Result{}, fmt.Errorf("%s was not computed: %w", key, refused)
}

// logPrimerFailure logs a primer failure, at most once per
// PrimerLogInterval per product: a client asking for absent keys must not
// be able to fill the log. The metric counts every failure.
func (c *Cache) logPrimerFailure(ctx context.Context, product, key string, err error) {
	if n, ok := c.throttle("primer/"+product, c.opts.PrimerLogInterval); ok {
		c.opts.Logger.WarnContext(ctx, "primer failed", "product", product, "key", key, "err", err, "not_logged_since_last", n)
	}
}

// throttle reports whether a line about id may be logged now (at most one
// per interval), and how many were not logged since the last one.
func (c *Cache) throttle(id string, interval time.Duration) (suppressed int, ok bool) {
	now := c.clock.Now()
	c.logMu.Lock()
	defer c.logMu.Unlock()
	last, seen := c.lastLogged[id]
	if seen && now.Sub(last.at) < interval {
		last.suppressed++
		c.lastLogged[id] = last
		return 0, false
	}
	c.lastLogged[id] = logState{at: now}
	return last.suppressed, true
}
