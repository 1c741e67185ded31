package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kck-go/kck/primers"
)

// Set stores value under key, for registered products and for plain keys
// with no primer alike (as KCK allowed).
func (c *Cache) Set(ctx context.Context, key string, value any) (Result, error) {
	return c.set(ctx, key, value, 0, false)
}

// CompareAndSet stores value only if the stored version equals expected
// (0: no value stored); otherwise it returns ErrVersionMismatch and leaves the
// stored value alone.
func (c *Cache) CompareAndSet(ctx context.Context, key string, value any, expected uint64) (Result, error) {
	return c.set(ctx, key, value, expected, true)
}

func (c *Cache) set(ctx context.Context, key string, value any, expected uint64, cas bool) (Result, error) {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return Result{}, err
	}
	if k.Name == "" {
		if _, err := primers.SplitName(key); err != nil {
			return Result{}, err
		}
	}
	raw, err := encode(value)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", primers.ErrBadInput, err)
	}
	var floor uint64
	if cas {
		// The lease makes read-compare-write one step across gateways
		// without a lightweight transaction on the entry rows themselves.
		lease := "cas/" + canonical
		if err := c.acquireWait(ctx, lease); err != nil {
			return Result{}, err
		}
		defer func() {
			if err := c.store.Release(context.WithoutCancel(ctx), lease, c.opts.Owner); err != nil {
				c.storeFailed(ctx, "release", canonical, err)
			}
		}()
		cur, err := c.store.Get(ctx, canonical)
		switch {
		case errors.Is(err, ErrNotFound):
			cur = Entry{}
		case err != nil:
			return Result{}, fmt.Errorf("compare-and-set %s: %w", canonical, err)
		}
		if cur.Version != expected {
			return Result{}, fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionMismatch, canonical, cur.Version, expected)
		}
		floor = cur.Version
	}
	var p *primers.Product
	if k.Name != "" {
		p = c.reg.Product(k.Name)
	}
	now := c.clock.Now()
	e := c.newEntry(p, canonical, raw, c.nextVersion(floor), now)
	if cas {
		if err := c.store.Put(ctx, *e); err != nil {
			return Result{}, fmt.Errorf("compare-and-set %s: %w", canonical, err)
		}
		c.forgetNegative(e.Key)
		c.remember(ctx, e)
		c.publish(e)
	} else {
		_ = c.put(ctx, e, false) // counted and logged; served from here
	}
	c.cascade(ctx, canonical)
	return Result{Entry: e, Tier: TierComputed}, nil
}

func (c *Cache) acquireWait(ctx context.Context, lease string) error {
	for {
		got, err := c.store.Acquire(ctx, lease, c.opts.Owner, c.opts.LeaseTTL)
		if err != nil {
			return fmt.Errorf("acquire %s: %w", lease, err)
		}
		if got {
			return nil
		}
		t := time.NewTimer(c.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Invalidate removes key from the store and this gateway's in-process tier.
// A computation that started before the call cannot bring the old value back:
// its version is lower than the deletion's.
//
// A key of a product that is not registered is refused, with nothing
// written, unless a value is stored under it (see Set): a deletion writes a
// tombstone, and clients must not be able to grow the store with them.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	k, canonical, err := c.resolve(key)
	if err != nil {
		return err
	}
	if k.Name == "" {
		switch _, err := c.store.Get(ctx, canonical); {
		case errors.Is(err, ErrNotFound):
			name, _ := primers.SplitName(key)
			return &primers.KeyError{Key: key, Reason: "no product named " + name + " and no value set", Err: primers.ErrUnknownProduct}
		case err != nil:
			return fmt.Errorf("invalidate %s: %w", canonical, err)
		}
	}
	c.forgetNegative(canonical)
	c.mem.Invalidate(canonical)
	version := c.nextVersion(0)
	if err := c.store.Delete(ctx, canonical, version); err != nil {
		return fmt.Errorf("invalidate %s: %w", canonical, err)
	}
	c.mem.Invalidate(canonical)
	c.publishDeleted(canonical, version)
	c.cascade(ctx, canonical)
	return nil
}
