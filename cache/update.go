package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kck-go/kck/primers"
)

// Augment folds change into key's current value with the product's
// AugmentFunc. Without one, or when it returns primers.ErrCannotAugment, or
// when nothing is cached yet, the product is recomputed instead.
func (c *Cache) Augment(ctx context.Context, key string, change any) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if k.Name == "" {
		return Result{}, &primers.KeyError{Key: key, Reason: "only registered products can be augmented", Err: primers.ErrUnknownProduct}
	}
	p := c.reg.Product(k.Name)
	cur, ok := c.mem.GetIfPresent(canonical)
	if !ok {
		if e, err := c.store.Get(ctx, canonical); err == nil {
			cur, ok = &e, true
		}
	}
	if p.Augment == nil || !ok || cur.Expired(c.clock.Now()) {
		return c.Refresh(ctx, canonical)
	}
	version := c.nextVersion(cur.Version)
	started := c.clock.Now()
	v, err := p.Augment(ctx, k, cur.Value, change)
	if errors.Is(err, primers.ErrCannotAugment) {
		return c.Refresh(ctx, canonical)
	}
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: canonical, Err: fmt.Errorf("augment: %w", err)}
	}
	raw, err := encode(v)
	if err != nil {
		return Result{}, &PrimerError{Product: k.Name, Key: canonical, Err: fmt.Errorf("augment: %w", err)}
	}
	e := c.newEntry(p, canonical, raw, version, started)
	_ = c.put(ctx, e, false) // counted and logged; served from here
	c.cascade(ctx, canonical)
	return Result{Entry: e, Tier: TierComputed}, nil
}

// UpdateOutcome is what running an updater did.
type UpdateOutcome struct {
	// Result is the updater's own result for the client.
	Result any
	// Products are the affected products after their refresh, in the order
	// the updater named them (read-your-writes).
	Products []ItemResult
}

// Update runs the named updater and then refreshes or augments every product
// it reports as affected. An updater error is returned as is and nothing is
// refreshed; refresh failures are reported per product.
func (c *Cache) Update(ctx context.Context, name string, input json.RawMessage) (UpdateOutcome, error) {
	u, err := c.reg.Updater(name)
	if err != nil {
		return UpdateOutcome{}, err
	}
	res, err := u.Update(ctx, input)
	if err != nil {
		return UpdateOutcome{}, fmt.Errorf("updater %s: %w", name, err)
	}
	out := UpdateOutcome{Result: res.Result, Products: make([]ItemResult, len(res.Affected))}
	// The refreshes are the write's, named by the updater, not the
	// client's reads: they do not spend the request's miss budget.
	ctx = WithMissBudget(ctx, 0)
	for i, key := range res.Affected {
		out.Products[i].Key = key
		if change, ok := res.Changes[key]; ok {
			out.Products[i].Result, out.Products[i].Err = c.Augment(ctx, key, change)
		} else {
			out.Products[i].Result, out.Products[i].Err = c.Refresh(ctx, key)
		}
		if err := out.Products[i].Err; err != nil {
			c.opts.Logger.Warn("refresh after update failed", "updater", name, "key", key, "err", err)
		}
	}
	return out, nil
}
