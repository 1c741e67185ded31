package gqlhttp

import (
	"context"
	"sync"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph"
)

// Collector is what one operation did: the products it read (recorded by
// the cache as they are read) and whether its response may be replayed. The
// handler makes one per HTTP request (Handler.Serve returns it); the
// gateway's response cache keeps a response by it.
type Collector struct {
	reads     *cache.Reads
	mu        sync.Mutex
	cacheable bool
	ran       bool // an operation executed (not refused before)
	errored   bool // its response has errors
	// adHoc: a document that is not trusted ran by exception (an admin in
	// enforce mode): its response must never be replayed to anyone else.
	adHoc bool
}

type collectorKey struct{}

// withCollector returns a context that collects the request's reads and
// outcome, and the collector.
func withCollector(ctx context.Context) (context.Context, *Collector) {
	ctx, reads := cache.WithReads(ctx)
	c := &Collector{reads: reads}
	return context.WithValue(ctx, collectorKey{}, c), c
}

// collectorFrom returns ctx's collector or nil.
func collectorFrom(ctx context.Context) *Collector {
	c, _ := ctx.Value(collectorKey{}).(*Collector)
	return c
}

// Reads returns the products read, in order.
func (c *Collector) Reads() []graph.Read { return c.reads.List() }

// Cacheable reports whether the response may be replayed while the products
// it read keep their versions: a query, without errors, that read at least
// one product and nothing stale.
func (c *Collector) Cacheable() bool {
	c.mu.Lock()
	ok := c.cacheable && !c.adHoc
	c.mu.Unlock()
	if !ok {
		return false
	}
	reads := c.reads.List()
	if len(reads) == 0 {
		return false
	}
	for _, r := range reads {
		if r.Stale {
			return false
		}
	}
	return true
}

func (c *Collector) setAdHoc() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.adHoc = true
	c.mu.Unlock()
}

func (c *Collector) setCacheable(v bool) {
	c.mu.Lock()
	c.cacheable = v
	c.mu.Unlock()
}

// setRan notes that an operation executed, and whether its response has
// errors.
func (c *Collector) setRan(errored bool) {
	c.mu.Lock()
	c.ran = true
	c.errored = c.errored || errored
	c.mu.Unlock()
}

func (c *Collector) executed() bool {
	if c == nil {
		return true // nothing known: leave the response alone
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ran
}

// Failed reports whether the request failed before execution or its
// response carries errors: such a response must not be cached by anyone.
func (c *Collector) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.ran || c.errored
}
