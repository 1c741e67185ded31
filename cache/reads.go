package cache

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Read is one product a request read, at one version: what a GraphQL
// response reports in extensions.kck.products, and what the gateway's
// response cache keeps a response under.
type Read struct {
	Key        string    `json:"key"`
	Version    uint64    `json:"version,string"` // 64 bits: a string in JSON
	ComputedAt time.Time `json:"computedAt"`
	Stale      bool      `json:"stale"`
	// StaleAt and ExpiresAt are the value's soft and hard expiries (zero:
	// none), for HTTP caching headers.
	StaleAt   time.Time `json:"-"`
	ExpiresAt time.Time `json:"-"`
	// Public: the product's declaration admits every caller (primers.Auth
	// Public), noted when it is read so that a response may be shared
	// without asking auth again.
	Public bool `json:"-"`
}

// Reads records the products one request read, each once per key and
// version. Resolvers run in parallel: it is safe for concurrent use.
type Reads struct {
	mu   sync.Mutex
	list []Read
}

type readsKey struct{}

// WithReads returns a context whose reads through the cache (Get, GetKey,
// GetMany, GetAtLeast) are recorded in a new record, and the record (it
// shadows one ctx has: a batch's operations each have their own). The
// reads a primer makes are the product's, not the request's: they are not
// recorded.
func WithReads(ctx context.Context) (context.Context, *Reads) {
	r := &Reads{}
	return context.WithValue(ctx, readsKey{}, r), r
}

// ReadsFrom returns ctx's record, or nil.
func ReadsFrom(ctx context.Context) *Reads {
	r, _ := ctx.Value(readsKey{}).(*Reads)
	return r
}

// withoutReads is ctx recording nothing (a primer's computation).
func withoutReads(ctx context.Context) context.Context {
	if ReadsFrom(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, readsKey{}, (*Reads)(nil))
}

// List returns what was recorded, in order.
func (r *Reads) List() []Read {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Read(nil), r.list...)
}

// Len is how many reads were recorded.
func (r *Reads) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

// Add records rd, once per key and version.
func (r *Reads) Add(rd Read) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.list {
		if x.Key == rd.Key && x.Version == rd.Version {
			return
		}
	}
	r.list = append(r.list, rd)
}

// Record notes res as read by ctx's request, when ctx records: the reads
// through the cache do it themselves; a caller that holds a result from
// elsewhere (an update's outcome it may show) records it here.
func (c *Cache) Record(ctx context.Context, res Result) {
	if res.Entry == nil {
		return
	}
	if r := ReadsFrom(ctx); r != nil {
		r.Add(c.read(res))
	}
}

// read is res as a Read.
func (c *Cache) read(res Result) Read {
	name, _, _ := strings.Cut(res.Key, "/")
	p := c.reg.Product(name)
	return Read{
		Key: res.Key, Version: res.Version, ComputedAt: res.ComputedAt, Stale: res.Stale,
		StaleAt: res.StaleAt, ExpiresAt: res.ExpiresAt, Public: p != nil && p.Auth.Public,
	}
}
