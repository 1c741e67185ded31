// Package queue is KCK's refresh queue: product keys waiting to be
// recomputed, deduplicated by key, prioritised, and claimed by workers in any
// gateway under a lease.
//
// What it promises, whatever the backend (see Store):
//   - One row per key. Requests for a key that is already queued are merged
//     into its row and counted; the row keeps the first and the last request
//     time.
//   - Claims are exclusive: while a claim's lease runs, no other worker gets
//     the row. A claim whose worker died is claimed again once its lease has
//     run out, so nothing queued is lost (at-least-once).
//   - Which rows a claim takes follows KCK's rules, implemented once, in
//     Select, for every backend.
//   - A failed refresh is retried with exponential backoff; after
//     Config.MaxAttempts failures (or one permanent failure) the key is
//     poisoned: kept, reported by Stats, never claimed again until removed.
//
// The state changes of a row (merge, claim, done, release) are pure functions
// in this package (Config.Merge, Config.Claim, Config.Done, Config.Release)
// so that a backend only stores rows and makes each change atomic: bbolt with
// a read-write transaction (cache/bolt.Queue), Cassandra with a lightweight
// transaction conditioned on the row's Version.
//
// The Worker drains a queue into a cache.Cache.
package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/tracing"
)

// Item is one queue row: a key waiting to be refreshed and what is known
// about the requests for it.
type Item struct {
	Key string
	// FirstRequested and LastRequested bound the merged requests.
	FirstRequested time.Time
	LastRequested  time.Time
	// Requests counts the merged requests.
	Requests int64
	// Version changes with every change of the row. Done and Release name
	// the version a worker claimed, so that requests merged after the claim
	// are not lost.
	Version uint64

	// Worker holds the claim ("" when unclaimed) until LeaseUntil.
	Worker     string
	ClaimedAt  time.Time
	LeaseUntil time.Time
	// ClaimedRequests is Requests at the claim; FirstSinceClaim is the first
	// request merged after it. Done keeps those later requests queued.
	ClaimedRequests int64
	FirstSinceClaim time.Time

	// Attempts counts failed refreshes (and claims whose lease ran out)
	// since the last success. NotBefore delays the next claim (backoff).
	Attempts  int
	NotBefore time.Time
	LastError string
	// Unavailable counts the Attempts that failed because something the
	// refresh needs did not answer (primers.ErrUnavailable: the source
	// database or the store down). That is no fault of the key: they delay
	// it but never poison it, or every key queued during an outage would
	// stop being refreshed for good.
	Unavailable int `json:",omitempty"`
	// Poisoned rows failed too often; they are never claimed again.
	Poisoned bool
	// Trace is the W3C traceparent of the last request merged that came
	// from a trace (a scheduled job's, an operator's request): the
	// refresh that answers it is a trace of its own, linked to that one.
	// Empty when none did.
	Trace string `json:",omitempty"`
}

// Claimed reports whether a worker's lease on it runs at now.
func (it *Item) Claimed(now time.Time) bool {
	return it.Worker != "" && now.Before(it.LeaseUntil)
}

// Stats describe a queue.
type Stats struct {
	// Depth counts the rows waiting or being refreshed, poisoned ones apart.
	Depth int
	// Claimed counts the rows under a running lease, Delayed those waiting
	// for their backoff to pass.
	Claimed int
	Delayed int
	// Poisoned counts the rows that failed too often; PoisonedKeys lists up
	// to 100 of them.
	Poisoned     int
	PoisonedKeys []string
	// OldestRequest is the first request time of the oldest row counted in
	// Depth (zero when Depth is 0).
	OldestRequest time.Time
	// MaxRequests is the highest request count among those rows.
	MaxRequests int64

	claimable []Item // for Next
}

// Next returns the keys a claim of batch rows would take now, in the order
// Select gives them (what kck queue shows as "next").
func (s Stats) Next(batch int) []string {
	sel := Select(slices.Clone(s.claimable), batch)
	keys := make([]string, len(sel))
	for i, it := range sel {
		keys[i] = it.Key
	}
	return keys
}

// OldestAge is how long the oldest waiting request has waited at now.
func (s Stats) OldestAge(now time.Time) time.Duration {
	if s.OldestRequest.IsZero() {
		return 0
	}
	return max(0, now.Sub(s.OldestRequest))
}

// Store is a refresh queue backend. Implementations must be safe for
// concurrent use by many workers in many processes, and pass
// queuetest.Run unchanged. Times are the caller's (Enqueue) or the
// backend's Config.Clock (everything else).
//
// The contract:
//   - Enqueue merges a request at time at into key's row (Config.Merge),
//     creating it if needed; the request's trace is ctx's span context
//     (TraceOf). EnqueueMany does the same for several keys.
//   - Claim takes up to batch claimable rows for worker (Config.Claimable;
//     a row whose lease ran out counts an attempt and may be poisoned),
//     chosen by Select, and leases them for leaseTTL. Two concurrent claims
//     never return the same row.
//   - Done(worker, key, version) ends a successful refresh: the row is
//     removed, or, when requests were merged after the claim, kept unclaimed
//     for them. It returns an error wrapping ErrNotClaimed when worker does
//     not hold the row any more.
//   - Release(worker, key, version, cause) ends a failed refresh: the row is
//     delayed by the backoff, or poisoned (Config.Release).
//   - Get returns a row or an error wrapping ErrNotFound; Remove deletes a
//     row whatever its state (an operator's tool: with Enqueue after it, a
//     poisoned key gets a fresh start).
//   - Stats describes the rows at the backend's now.
type Store interface {
	Enqueue(ctx context.Context, key string, at time.Time) error
	EnqueueMany(ctx context.Context, keys []string, at time.Time) error
	Claim(ctx context.Context, worker string, batch int, leaseTTL time.Duration) ([]Item, error)
	Done(ctx context.Context, worker, key string, version uint64) error
	Release(ctx context.Context, worker, key string, version uint64, cause error) error
	Get(ctx context.Context, key string) (Item, error)
	Remove(ctx context.Context, key string) error
	Stats(ctx context.Context) (Stats, error)
}

var (
	// ErrNotFound: no row for the key.
	ErrNotFound = errors.New("not queued")
	// ErrNotClaimed: the worker does not hold the row (its lease ran out and
	// another worker claimed it, or the row is gone).
	ErrNotClaimed = errors.New("not claimed by this worker")
	// ErrPermanent marks a failure that retrying cannot fix (an unknown
	// product, a malformed key): Release poisons the row at once.
	ErrPermanent = errors.New("permanent failure")
)

// Permanent wraps err so that Release poisons the row without retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// TraceOf is the trace a request made with ctx comes from, as Merge takes
// it: ctx's span context as a W3C traceparent, "" when it has none.
func TraceOf(ctx context.Context) string {
	return tracing.TraceParent(trace.SpanContextFromContext(ctx))
}

// Config is what every backend needs to apply the queue's rules.
type Config struct {
	// Clock is the backend's now for claims, leases and backoff. Default
	// the wall clock.
	Clock cache.Clock
	// MaxAttempts failures poison a key. Default 5.
	MaxAttempts int
	// Backoff is the delay before attempt n+1 after n failures. Default
	// 1 s doubling per failure, at most 5 minutes.
	Backoff func(failures int) time.Duration
}

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = cache.SystemClock{}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	return c
}

// Validate reports a config no backend can work with.
func (c Config) Validate() error {
	if c.MaxAttempts < 0 {
		return errors.New("queue config: MaxAttempts must not be negative")
	}
	return nil
}

// UnavailableBackoffMax caps the backoff after a failure of an unavailable
// dependency: the refresh is retried at least this often, so that once the
// dependency is back the key is refreshed within it.
const UnavailableBackoffMax = 10 * time.Second

// DefaultBackoff is 1 s, 2 s, 4 s, ... capped at 5 minutes.
func DefaultBackoff(failures int) time.Duration {
	const maxDelay = 5 * time.Minute
	if failures <= 0 {
		return 0
	}
	if failures > 9 {
		return maxDelay
	}
	return min(time.Second<<(failures-1), maxDelay)
}
