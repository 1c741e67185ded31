package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Bus carries a cluster's announcements between its gateways (cache/nats;
// the PostgreSQL store's LISTEN/NOTIFY). Every cache announces each value
// it stores and each key it deletes, and applies the other gateways'
// announcements to its in-process tier: a newer inline value replaces the
// copy, an announcement without one drops it. Each gateway gets each
// announcement once, pushed: the work a change costs a gateway does not
// depend on how many gateways there are, and a subscriber is told of a
// change made anywhere as soon as the bus brings it.
//
// Announcements are hints, never the truth (the store is): a gateway that
// may have missed some (its connection dropped, an origin's sequence
// skipped, the bus rejected a publish) serves its values flagged stale
// while it is cut off, and drops its whole in-process tier when the bus is
// back, so it converges to the store's newest versions. See
// docs/scaling.md for why this, rather than a replayable stream.
type Bus interface {
	// Publish hands ch to the bus for every other gateway. It does not wait
	// for them, nor for the network (the cache calls it under a lock, to
	// keep its announcements in order); an error says the bus did not
	// take it.
	Publish(ch Change) error
	// Subscribe delivers the other gateways' announcements to h, each
	// origin's in the order it published them, one at a time. Called once.
	Subscribe(h BusHandler) error
	// Connected reports whether the bus is connected now. Before
	// Subscribe it may say no (a bus that connects in Subscribe).
	Connected() bool
}

// BusHandler receives a Bus's announcements and connection events.
type BusHandler struct {
	Change func(Change)
	// Lost: the connection dropped; announcements may be missed from now.
	Lost func(err error)
	// Resumed: the connection is back, or up for the first time after
	// Subscribe found it down.
	Resumed func()
}

// Assigner is implemented by buses that can hand a refresh to one gateway
// of the cluster (NATS: a queue group), so that a source change is
// refreshed once in the cluster and the refreshes are spread over it.
type Assigner interface {
	// Assign asks one gateway that serves assignments (this one, maybe) to
	// refresh key as asked at asked, and returns the outcome it reported.
	// An error wrapping ErrNoAssignee says nobody took it. ctx's span
	// context, when valid, travels with the assignment (W3C traceparent):
	// the refresh on the other side is a span of the same trace.
	Assign(ctx context.Context, key string, asked time.Time) error
	// ServeAssignments hands each assignment to fn, which calls done with
	// its outcome, from any goroutine. Called once. fn's ctx carries the
	// span context that came with the assignment (none: a background
	// context), not a deadline.
	ServeAssignments(fn func(ctx context.Context, key string, asked time.Time, done func(error))) error
}

// ErrNoAssignee: no gateway took an assignment (none serves, or none
// answered in time).
var ErrNoAssignee = errors.New("no gateway took the refresh")

// busState is what the cache knows of its bus.
type busState struct {
	// down: announcements may be being missed. Values are served flagged
	// stale until the bus is back and the tier was dropped.
	down atomic.Bool
	// seq numbers this cache's announcements; pubMu holds from taking a
	// number to handing the announcement to the bus, so that they reach it
	// in the order of their numbers (the others take a number out of order
	// for a missed announcement, and drop their whole tier).
	pubMu sync.Mutex
	seq   uint64
	// rejected: a publish failed since the bus was last up; the others are
	// told to resync when it is.
	rejected atomic.Bool

	mu      sync.Mutex
	lastSeq map[string]uint64 // by origin

	// gen counts the times the tier was dropped (resync): a read or a
	// computation that began before one keeps nothing in the tier (see
	// withGen and remember).
	gen atomic.Uint64
	// floors are the versions announced for keys this gateway did not
	// hold (or deleted), kept as long as a read or computation may run:
	// one under way that finds an older version keeps nothing in the tier.
	floors *otter.Cache[string, uint64]
}

// maxFloors bounds the keys whose announced version a cache remembers
// (about 100 bytes each); past it the oldest go first.
const maxFloors = 1 << 16

// maxOrigins bounds the origins whose sequence a cache follows; past it the
// map starts again (one origin's next announcement is then a first
// contact, never mistaken for a gap).
const maxOrigins = 4096

func (c *Cache) followBus() error {
	b := c.opts.Bus
	c.bus.lastSeq = map[string]uint64{}
	floors, err := otter.New(&otter.Options[string, uint64]{
		MaximumSize: maxFloors,
		// A load's bound (a lease wait and a primer run): no read or
		// computation begun before the announcement runs longer.
		ExpiryCalculator: otter.ExpiryWriting[string, uint64](c.opts.LeaseTTL + c.opts.PrimerTimeout),
	})
	if err != nil {
		return err
	}
	c.bus.floors = floors
	err = b.Subscribe(BusHandler{
		Change: c.receive,
		Lost:   c.busLost,
		Resumed: func() {
			c.resync("bus connection restored")
			c.bus.down.Store(false)
			c.epoch.Add(1)
			if c.bus.rejected.Swap(false) {
				c.announce(Change{Resync: true})
			}
		},
	})
	// Asked after Subscribe, not before: a bus may connect in Subscribe
	// (PostgreSQL's LISTEN), and one found down before it would never be
	// reported Resumed, leaving every value flagged stale for good. From
	// Subscribe on, a change of the connection is the handler's.
	if err == nil && !b.Connected() {
		c.busLost(errors.New("not connected at start"))
	}
	return err
}

// receive applies another gateway's announcement.
func (c *Cache) receive(ch Change) {
	if ch.Origin == c.opts.Owner {
		return // a bus that echoes (LISTEN/NOTIFY)
	}
	c.m.busReceived.Inc()
	if c.skipped(ch) {
		c.resync(fmt.Sprintf("announcements of %s missed", ch.Origin))
	}
	if ch.Resync {
		c.resync(ch.Origin + " could not announce some of its changes")
		return
	}
	c.applyChange(ch)
}

// skipped reports whether ch shows that announcements of its origin were
// missed.
func (c *Cache) skipped(ch Change) bool {
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	last, known := c.bus.lastSeq[ch.Origin]
	if !known && len(c.bus.lastSeq) >= maxOrigins {
		clear(c.bus.lastSeq)
	}
	c.bus.lastSeq[ch.Origin] = ch.Seq
	return known && ch.Seq != last+1
}

func (c *Cache) busLost(err error) {
	if c.bus.down.Swap(true) {
		return
	}
	// Responses kept while connected must be checked again: Peek says no
	// while the bus is down.
	c.epoch.Add(1)
	c.m.busLost.Inc()
	c.opts.Logger.Warn("change bus: connection lost; serving in-process values flagged stale until it is back", "err", err)
}

// resync drops everything this gateway remembers, since announcements
// were missed: the in-process tier, the negative answers, and tells every
// watcher to read again.
func (c *Cache) resync(reason string) {
	c.bus.gen.Add(1) // before the tier is dropped: see withGen
	c.mem.InvalidateAll()
	if c.neg != nil {
		c.neg.InvalidateAll()
	}
	c.watch.notifyAll()
	c.m.busResyncs.Inc()
	c.opts.Logger.Info("change bus: in-process tier dropped; values are read from the store again", "reason", reason)
}

// announce tells this gateway's watchers of ch and the other gateways,
// through the bus, when there is one.
func (c *Cache) announce(ch Change) {
	if ch.Key != "" {
		c.notify(ch.Key, ch.Version)
		c.instances.apply(ch, c.clock.Now())
	}
	b := c.opts.Bus
	if b == nil {
		return
	}
	c.bus.pubMu.Lock()
	c.bus.seq++
	ch.Origin, ch.At, ch.Seq = c.opts.Owner, c.clock.Now(), c.bus.seq
	err := b.Publish(ch)
	c.bus.pubMu.Unlock()
	if err != nil {
		c.bus.rejected.Store(true)
		c.storeFailed(context.Background(), "publish", ch.Key, err)
		return
	}
	c.m.busSent.Inc()
}

// publish announces that e was stored: with its value when it is small
// enough to travel on the bus.
func (c *Cache) publish(e *Entry) {
	ch := Change{Key: e.Key, Version: e.Version}
	if len(e.Value) <= c.opts.BusInlineBytes {
		ch.Entry = e
	}
	c.announce(ch)
}

// publishDeleted announces that key was deleted at version.
func (c *Cache) publishDeleted(key string, version uint64) {
	c.announce(Change{Key: key, Version: version, Deleted: true})
}

// applyChange brings the in-process copy of ch.Key up to ch: an inline
// value replaces an older copy (or becomes one when a subscriber here
// watches the key), an announcement without one drops the older copy so
// that the next read takes the store's.
func (c *Cache) applyChange(ch Change) {
	now := c.clock.Now()
	// Another gateway stored or deleted the key: whatever this one
	// remembered of its absence is out of date.
	c.forgetNegative(ch.Key)
	c.instances.apply(ch, now)
	if ch.SourceChanged {
		c.notify(ch.Key, 0)
		return
	}
	watched := c.watch.has(ch.Key)
	outcome := ""
	held := false // at ch.Version or newer, once applied
	c.mem.Compute(ch.Key, func(e *Entry, found bool) (*Entry, otter.ComputeOp) {
		if found && e.Version >= ch.Version {
			held = true
			return e, otter.CancelOp
		}
		if in := ch.Entry; in != nil && !ch.Deleted && (found || watched) && !in.Expired(now) {
			ne := &Entry{Key: ch.Key, Value: in.Value, Version: ch.Version, ComputedAt: in.ComputedAt,
				StaleAt: in.StaleAt, ExpiresAt: in.ExpiresAt, reads: c.m.productOf(ch.Key)}
			outcome, held = "replaced", true
			return ne, otter.WriteOp
		}
		if found {
			outcome = "dropped"
			return nil, otter.InvalidateOp
		}
		return e, otter.CancelOp
	})
	if !held {
		// A read or computation of the key under way here may find what
		// this replaced: it must not keep it (remember).
		c.bus.floors.Compute(ch.Key, func(v uint64, found bool) (uint64, otter.ComputeOp) {
			if found && v >= ch.Version {
				return v, otter.CancelOp
			}
			return ch.Version, otter.WriteOp
		})
	}
	if outcome != "" {
		c.m.busApplied.WithLabelValues(outcome).Inc()
		c.m.busLag.Observe(max(0, now.Sub(ch.At).Seconds()))
	}
	c.notify(ch.Key, ch.Version)
}

// genKey carries, in a read's or a computation's context, the tier's
// generation (busState.gen) when it began.
type genKey struct{}

// withGen marks ctx as the context of work that may put a value in the
// tier: begun now, before any later resync.
func (c *Cache) withGen(ctx context.Context) context.Context {
	if c.opts.Bus == nil {
		return ctx
	}
	return context.WithValue(ctx, genKey{}, c.bus.gen.Load())
}

// superseded reports whether e, found by the work of ctx, must not be kept
// in the tier: the tier was dropped since that work began, or a newer
// version of its key was announced while this gateway did not hold it.
func (c *Cache) superseded(ctx context.Context, e *Entry) bool {
	if c.opts.Bus == nil {
		return false
	}
	if g, ok := ctx.Value(genKey{}).(uint64); ok && g != c.bus.gen.Load() {
		return true
	}
	v, ok := c.bus.floors.GetIfPresent(e.Key)
	return ok && e.Version < v
}

// BusConnected reports whether this gateway hears the cluster's
// announcements now (true without a bus: a lone gateway misses nothing).
func (c *Cache) BusConnected() bool { return c.opts.Bus == nil || !c.bus.down.Load() }
