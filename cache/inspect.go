package cache

import (
	"context"
	"errors"
	"sort"
	"strings"
)

// What an operator's console reads: nothing here is on a request path.

// TierStats describe this gateway's in-process tier.
type TierStats struct {
	Entries int
	// Bytes is the tier's weight (keys, values and a fixed overhead per
	// entry) against MaxBytes.
	Bytes, MaxBytes uint64
}

// MemoryStats describes the in-process tier.
func (c *Cache) MemoryStats() TierStats {
	return TierStats{Entries: c.mem.EstimatedSize(), Bytes: c.mem.WeightedSize(), MaxBytes: c.opts.MaxMemoryBytes}
}

// Lookup returns key's entry as this gateway holds it, from the in-process
// tier or else the store, without computing it; ErrNotFound when neither
// holds it. InMemory says which tier answered.
func (c *Cache) Lookup(ctx context.Context, key string) (e Entry, inMemory bool, err error) {
	_, canonical, err := c.resolve(key)
	if err != nil {
		return Entry{}, false, err
	}
	if m, ok := c.mem.GetIfPresent(canonical); ok && !m.Expired(c.clock.Now()) {
		return *m, true, nil
	}
	e, err = c.store.Get(ctx, canonical)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.storeFailed(ctx, "get", canonical, err)
		}
		return Entry{}, false, err
	}
	return e, false, nil
}

// ProductDependencies returns, for each product, the products whose
// primers were seen reading it in this gateway (from the key-level
// dependencies Dependents reports), sorted.
func (c *Cache) ProductDependencies() map[string][]string {
	c.deps.mu.Lock()
	sets := map[string]map[string]struct{}{}
	for dep, dependents := range c.deps.dependents {
		from, _, _ := strings.Cut(dep, "/")
		for d := range dependents {
			to, _, _ := strings.Cut(d, "/")
			if sets[from] == nil {
				sets[from] = map[string]struct{}{}
			}
			sets[from][to] = struct{}{}
		}
	}
	c.deps.mu.Unlock()
	out := make(map[string][]string, len(sets))
	for from, s := range sets {
		for to := range s {
			out[from] = append(out[from], to)
		}
		sort.Strings(out[from])
	}
	return out
}
