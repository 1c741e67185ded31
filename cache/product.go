package cache

import (
	"context"
	"fmt"
	"strings"
)

// InvalidateProducts removes every value of the products the cluster holds: the
// keys in this gateway's tier and its remembered absent keys, and, with a
// scanner, every key of it in the store (a whole scan: an operator's tool,
// or a reload's, not a request's). Each deletion is announced, so other
// gateways drop their copies (and the responses built on them), and its
// version fences out a computation that started before it: the next read
// computes the product again. It works on keys as they are stored, so it
// also removes the values of a product no longer registered, or whose
// parameters changed (SQL products reloaded with another statement). It
// returns how many keys it removed. One scan serves every product named.
func (c *Cache) InvalidateProducts(ctx context.Context, products []string, sc Scanner) (int, error) {
	if len(products) == 0 {
		return 0, nil
	}
	// First the fence: a computation under way on this gateway (it
	// started before, with the old statement) is not kept, even for a key
	// no store scan can find yet.
	fence := c.nextVersion(0)
	names := make(map[string]bool, len(products))
	for _, p := range products {
		names[p] = true
		c.fences.Store(p, fence)
	}
	of := func(k string) bool {
		name, _, _ := strings.Cut(k, "/")
		return names[name]
	}
	keys := map[string]struct{}{}
	for k := range c.mem.Keys() {
		if of(k) {
			keys[k] = struct{}{}
		}
	}
	if c.neg != nil {
		for k := range c.neg.Keys() {
			if of(k) {
				c.neg.Invalidate(k)
			}
		}
	}
	if sc != nil {
		if err := sc.Scan(ctx, func(e Entry) error {
			if of(e.Key) {
				keys[e.Key] = struct{}{}
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("invalidate %s: listing their stored keys: %w", strings.Join(products, ", "), err)
		}
	}
	n := 0
	for k := range keys {
		c.forgetNegative(k)
		c.mem.Invalidate(k)
		version := c.nextVersion(fence)
		if err := c.store.Delete(ctx, k, version); err != nil {
			return n, fmt.Errorf("invalidate %s: %w", k, err)
		}
		c.mem.Invalidate(k)
		c.publishDeleted(k, version)
		c.cascade(ctx, k)
		n++
	}
	return n, nil
}

// fenced reports whether e was computed before its product's values were
// invalidated by InvalidateProducts: it is then not kept (its caller still
// gets it: a request under way finishes with what it started with).
func (c *Cache) fenced(e *Entry) bool {
	name, _, _ := strings.Cut(e.Key, "/")
	f, ok := c.fences.Load(name)
	return ok && e.Version < f.(uint64)
}
