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
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/kck-go/kck/internal/lifecycle"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/tracing"
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
	// notStored is the store's error when a value computed here was served
	// but not stored (see ErrNotStored).
	notStored error
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
	// ErrNotStored: a refresh computed its value, which this gateway serves,
	// but the store did not take it (RefreshChanged reports it): the others,
	// and this one once its tier drops it, still read the old value, so
	// whoever asked for the refresh should ask again.
	ErrNotStored = errors.New("refreshed but not stored")
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
	// tracer is nil when tracing is off (see Options.TracerProvider).
	tracer trace.Tracer

	flight      singleflight.Group // per-key misses
	lastVersion atomic.Uint64
	// fences: product -> the version below which its values are not kept
	// (InvalidateProducts: they were computed before its statement changed).
	fences sync.Map
	// epoch counts the in-process tier's replacements and removals (see
	// Epoch); shared with the tier's deletion listener.
	epoch *atomic.Uint64

	deps      *dependencies
	bus       busState  // see Bus
	watch     watchers  // subscribers of keys (see Watch)
	instances instances // keys of products a source change refreshes all of

	logMu      sync.Mutex
	lastLogged map[string]logState // by store operation

	refreshMu sync.Mutex
	refreshes map[string]*refreshing // by key (refresh.go)

	dispatchMu    sync.Mutex
	dispatching   map[string]*dispatch // by key (dispatch.go)
	dispatchSlots chan struct{}

	bgMu      sync.Mutex
	bgPending map[string]*bgJob // waiting for a slot (background.go)
	bgRunning map[string]int
	bgSlots   chan struct{}

	// life owns every goroutine the cache starts (background refreshes,
	// refresh runs, fills, dispatches): Close waits for them, so the store
	// and the bus are never closed under them.
	life *lifecycle.Group
}

// entryOverhead approximates the bytes an in-process entry costs beyond its
// key and value (the Entry struct, otter's node, map slot).
const entryOverhead = 160

// New returns a cache over opts.Store.
func New(opts Options) (*Cache, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	epoch := new(atomic.Uint64)
	mem, err := otter.New(&otter.Options[string, *Entry]{
		MaximumWeight: opts.MaxMemoryBytes,
		// Under the bucket's lock, before the write or removal returns: a
		// reader that sees the old epoch read before the change.
		OnAtomicDeletion: func(otter.DeletionEvent[string, *Entry]) { epoch.Add(1) },
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
	c := &Cache{
		epoch:      epoch,
		neg:        neg,
		opts:       opts,
		reg:        opts.Registry,
		store:      opts.Store,
		clock:      opts.Clock,
		mem:        mem,
		m:          newMetrics(opts.Registerer, productNames(opts.Registry)),
		deps:       newDependencies(),
		lastLogged: map[string]logState{},
		refreshes:  map[string]*refreshing{},
		bgPending:  map[string]*bgJob{},
		bgRunning:  map[string]int{},
		bgSlots:    make(chan struct{}, opts.BackgroundRefreshes),

		dispatching:   map[string]*dispatch{},
		dispatchSlots: make(chan struct{}, maxDispatches),
		life:          lifecycle.New(),
	}
	if opts.TracerProvider != nil {
		c.tracer = opts.TracerProvider.Tracer(tracing.Scope)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newFreshnessCollector(c)); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("cache: metrics: %w", err)
		}
	}
	c.instances.init(opts.Registry)
	if opts.Bus != nil {
		if err := c.followBus(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("cache: change bus: %w", err)
		}
		if a, ok := opts.Bus.(Assigner); ok {
			if err := a.ServeAssignments(c.serveAssignment); err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("cache: change bus: %w", err)
			}
		}
	}
	return c, nil
}

// Close stops background work (refreshes, fills, dispatches) and waits
// for every goroutine the cache started; what was still to run answers
// ErrClosed. It does not close the store or the bus, which the caller
// opened: close them after.
func (c *Cache) Close() error {
	c.life.Close()
	// The tiers' own clean-up goroutines (otter's, for expiry).
	c.mem.StopAllGoroutines()
	if c.neg != nil {
		c.neg.StopAllGoroutines()
	}
	if c.bus.floors != nil {
		c.bus.floors.StopAllGoroutines()
	}
	return nil
}

// Registry returns the product declarations the cache serves.
func (c *Cache) Registry() *primers.Registry { return c.reg }

// Now is the time on the cache's clock (expiries are on it).
func (c *Cache) Now() time.Time { return c.clock.Now() }

// Store returns the shared tier.
func (c *Cache) Store() Store { return c.store }
