package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kck-go/kck/primers"
)

// WarmOptions configure Warm.
type WarmOptions struct {
	// Concurrency bounds the keys read or computed at once. Default 32.
	Concurrency int
	// BucketSize is about how many keys one warm lease covers. Default 64.
	BucketSize int
	// OnKey, when set, is called once for each key when it is done, with
	// its error (nil when the key is in this gateway's in-process tier).
	OnKey func(key string, err error)
}

func (o WarmOptions) withDefaults() WarmOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.BucketSize <= 0 {
		o.BucketSize = 64
	}
	if o.OnKey == nil {
		o.OnKey = func(string, error) {}
	}
	return o
}

// Warm puts every key in this gateway's in-process tier: read from the
// store, or computed when the store has none. It returns when every key is
// done or ctx is done; keys that failed are reported to OnKey.
//
// Gateways that boot together warm the same keys, and taking each key's
// lease would cost two lightweight transactions per key (Paxos rounds on
// Cassandra) while they contend for the same lease rows. Warm shares the work
// instead: keys fall into buckets by a hash of the key, the same on every
// gateway warming the same set, and one lease covers a bucket. A gateway
// that gets a bucket's lease reads its keys once, under the lease, and
// computes the missing ones; a gateway refused the lease reads what the
// holder has stored so far and visits the bucket again later (backing off
// from the poll interval to a second), until its keys are in the store.
// A reader that misses
// a key in a bucket being warmed elsewhere computes it under the key's own
// lease as usual, so a key can be computed twice then, never served wrong:
// versions order the writes.
func (c *Cache) Warm(ctx context.Context, keys []string, opts WarmOptions) {
	opts = opts.withDefaults()
	n := len(keys)
	if n == 0 {
		return
	}
	// A power of two, so that gateways warming about as many keys agree on
	// the buckets (and on their lease names, which carry the count).
	nb := 1
	if n > opts.BucketSize {
		nb = 1 << bits.Len(uint(n/opts.BucketSize))
	}
	buckets := make([][]string, nb)
	for _, k := range keys {
		h := fnv.New64a()
		_, _ = h.Write([]byte(k))
		b := h.Sum64() % uint64(nb)
		buckets[b] = append(buckets[b], k)
	}
	// In a random order, gateways booting together start on different
	// buckets.
	pending := make([]int, 0, nb)
	for b := range buckets {
		if len(buckets[b]) > 0 {
			pending = append(pending, b)
		}
	}
	rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })

	sem := make(chan struct{}, opts.Concurrency)
	// Each visit of a deferred bucket reads its missing keys and tries its
	// lease again: back off while another gateway computes them.
	wait := c.opts.PollInterval
	for len(pending) > 0 {
		var (
			mu       sync.Mutex
			deferred []int
			wg       sync.WaitGroup
			slots    = make(chan struct{}, max(warmBucketsAtOnce, opts.Concurrency/8))
		)
		for _, b := range pending {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				name := fmt.Sprintf("warm/%d/%d", nb, b)
				if left := c.warmBucket(ctx, name, buckets[b], sem, opts); len(left) > 0 {
					mu.Lock()
					buckets[b] = left
					deferred = append(deferred, b)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		pending = deferred
		if len(pending) == 0 {
			return
		}
		// Another gateway holds these buckets: give it time to store them.
		t := time.NewTimer(wait)
		wait = min(2*wait, maxWarmWait)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, b := range pending {
				for _, k := range buckets[b] {
					opts.OnKey(k, ctx.Err())
				}
			}
			return
		case <-t.C:
		}
	}
}

// maxWarmWait is the longest a gateway waits before it looks again at the
// buckets another gateway is warming.
const maxWarmWait = time.Second

// warmBucketsAtOnce overlaps one bucket's lease round trip with another's
// reads and computations (at least; a Concurrency above 32 warms
// Concurrency/8 buckets at once); the keys in flight stay bounded by
// Concurrency.
const warmBucketsAtOnce = 4

// warmBucket warms keys under the bucket lease name. It returns the keys
// left for later (the lease is another gateway's and they are not stored
// yet), and reports every other key to OnKey.
//
// In a cold bucket the lease comes first and each key is read once, under
// it: a key the holder finds missing stays missing until the holder
// computes it (other gateways warming it wait for the bucket; a reader's
// miss computes under the key's own lease, see Warm), so no second read is
// needed before the primer runs, and the write may skip Put's version read
// (NewPutter).
func (c *Cache) warmBucket(ctx context.Context, lease string, keys []string, sem chan struct{}, opts WarmOptions) (left []string) {
	if err := ctx.Err(); err != nil {
		for _, k := range keys {
			opts.OnKey(k, err)
		}
		return nil
	}
	todo := make(map[string]primers.Key, len(keys))
	for _, key := range keys {
		k, canonical, err := c.resolve(key)
		if err == nil && k.Name == "" {
			err = &primers.KeyError{Key: key, Reason: "only registered products can be warmed", Err: primers.ErrUnknownProduct}
		}
		if err != nil {
			opts.OnKey(key, err)
			continue
		}
		if _, ok := c.memFresh(canonical); ok {
			opts.OnKey(key, nil)
			continue
		}
		todo[key] = k
	}
	if len(todo) == 0 {
		return nil
	}
	// A bucket with one key stored is most likely stored whole (a
	// restart): read it without the lease, which is then taken only for
	// the keys missing, read again under it. Otherwise (a cold boot) the
	// lease comes first. One read tells which, for about BucketSize keys.
	var probe string
	for key := range todo {
		probe = key
		break
	}
	read := false
	c.parallel(ctx, []string{probe}, sem, func(key string) { _, read = c.stored(c.withGen(ctx), todo[key].String()) })
	if read {
		opts.OnKey(probe, nil)
		delete(todo, probe)
		var (
			mu    sync.Mutex
			found []string
		)
		c.parallel(ctx, keysOf(todo), sem, func(key string) {
			if _, ok := c.stored(c.withGen(ctx), todo[key].String()); ok {
				opts.OnKey(key, nil)
				mu.Lock()
				found = append(found, key)
				mu.Unlock()
			}
		})
		for _, key := range found {
			delete(todo, key)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	got, aerr := c.store.Acquire(ctx, lease, c.opts.Owner, c.opts.LeaseTTL)
	if aerr != nil {
		// Without the store we cannot share the work: each key's own read
		// path (which computes anyway when the store fails) will do.
		c.storeFailed(ctx, "acquire", lease, aerr)
		c.parallel(ctx, keysOf(todo), sem, func(key string) {
			_, err := c.get(ctx, key)
			opts.OnKey(key, err)
		})
		return nil
	}
	if !got {
		if read {
			return keysOf(todo)
		}
		// Another gateway is warming the bucket: take what it has stored
		// so far, and leave the rest for a later visit.
		var mu sync.Mutex
		c.parallel(ctx, keysOf(todo), sem, func(key string) {
			if _, found := c.stored(c.withGen(ctx), todo[key].String()); found {
				opts.OnKey(key, nil)
				return
			}
			mu.Lock()
			left = append(left, key)
			mu.Unlock()
		})
		return left
	}
	defer func() {
		if err := c.store.Release(context.WithoutCancel(ctx), lease, c.opts.Owner); err != nil {
			c.storeFailed(ctx, "release", lease, err)
		}
	}()
	c.parallel(ctx, keysOf(todo), sem, func(key string) {
		opts.OnKey(key, c.warmKey(ctx, todo[key]))
	})
	return nil
}

// warmKey reads k from the store and computes it when the store has none,
// under the bucket lease the caller holds, sharing the flight of a reader of
// the same key in this process.
func (c *Cache) warmKey(ctx context.Context, k primers.Key) error {
	key := k.String()
	ch := c.flight.DoChan(key, func() (any, error) {
		if r, ok := c.memFresh(key); ok {
			return loadResult{r: r}, nil
		}
		if !c.life.Enter() {
			return loadResult{err: ErrClosed}, nil
		}
		defer c.life.Leave()
		bound, release := c.life.Bind(context.WithoutCancel(ctx))
		defer release()
		fctx, cancel := context.WithTimeout(bound, c.opts.PrimerTimeout)
		defer cancel()
		fctx = c.withGen(fctx)
		e, err := c.store.Get(fctx, key)
		if _, found := c.fromStore(fctx, key, e, err); found {
			return loadResult{}, nil
		}
		absent := errors.Is(err, ErrNotFound)
		c.m.miss.Inc()
		if p := c.m.productOf(key); p != nil {
			p.miss.Inc() // as in the totals; its time is boot warming's, not a reader's: no miss latency
		}
		r, err := c.computeHeld(fctx, k, key, 0, absent)
		return loadResult{r: r, err: err}, nil
	})
	select {
	case res := <-ch:
		return res.Val.(loadResult).err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parallel calls fn for each key, as many at once as sem allows, and waits.
func (c *Cache) parallel(ctx context.Context, keys []string, sem chan struct{}, fn func(key string)) {
	var wg sync.WaitGroup
	for _, k := range keys {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(k)
		})
	}
	wg.Wait()
}

func keysOf(m map[string]primers.Key) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
