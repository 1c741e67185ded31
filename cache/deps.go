package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"sort"
	"sync"
	"time"
)

// chain is the list of keys being computed along one chain of primer reads,
// innermost last. It lives in the context so that a primer reading a product
// that is already being computed above it fails fast instead of waiting on
// itself.
type chain struct {
	key    string
	parent *chain
}

type chainKey struct{}

func withChain(ctx context.Context, key string) context.Context {
	parent, _ := ctx.Value(chainKey{}).(*chain)
	return context.WithValue(ctx, chainKey{}, &chain{key: key, parent: parent})
}

func checkCycle(ctx context.Context, key string) error {
	c, _ := ctx.Value(chainKey{}).(*chain)
	for p := c; p != nil; p = p.parent {
		if p.key == key {
			return fmt.Errorf("%w: %s reads itself through %s", ErrCycle, key, c.key)
		}
	}
	return nil
}

// reader is what a primer's context holds: reads go through the cache and
// are recorded as dependencies of the product being computed.
type reader struct {
	c      *Cache
	parent string
}

func (r reader) ReadProduct(ctx context.Context, key string) (json.RawMessage, error) {
	res, err := r.c.get(ctx, key) // the primer's read, not a request's
	if err != nil {
		return nil, err
	}
	r.c.deps.add(res.Key, r.parent)
	return res.Value, nil
}

// dependencies maps a product key to the keys of products computed from it,
// as observed when their primers read it.
type dependencies struct {
	mu         sync.Mutex
	dependents map[string]map[string]struct{}
}

func newDependencies() *dependencies {
	return &dependencies{dependents: map[string]map[string]struct{}{}}
}

func (d *dependencies) add(dep, dependent string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.dependents[dep]
	if s == nil {
		s = map[string]struct{}{}
		d.dependents[dep] = s
	}
	s[dependent] = struct{}{}
}

func (d *dependencies) of(key string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.dependents[key]))
	for k := range d.dependents[key] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Dependents returns the keys known to be computed from key.
func (c *Cache) Dependents(key string) []string { return c.deps.of(key) }

// cascade refreshes, in the background, the products computed from key, now
// that key has changed. Their own refreshes cascade further. A change, not
// a stale read: a refresh of a dependent under way may have read key's old
// value, so it is refreshed again after. Each is a trace of its own,
// linked to the refresh of key (ctx's span).
func (c *Cache) cascade(ctx context.Context, key string) {
	bt := bgTrace{trigger: triggerDependency, link: trace.SpanContextFromContext(ctx)}
	for _, d := range c.deps.of(key) {
		c.refreshSoon(d, true, false, time.Time{}, bt, nil)
	}
}
