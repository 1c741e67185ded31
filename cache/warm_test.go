package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// leaseCountingStore counts lease acquisitions by lease-name prefix.
type leaseCountingStore struct {
	*countingStore
	mu       sync.Mutex
	acquires map[string]int // "warm" or "prime"
	onWarm   func()         // called on each warm-lease attempt
}

func (s *leaseCountingStore) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	kind := "other"
	switch {
	case len(lease) > 5 && lease[:5] == "warm/":
		kind = "warm"
	case len(lease) > 6 && lease[:6] == "prime/":
		kind = "prime"
	}
	s.mu.Lock()
	s.acquires[kind]++
	on := s.onWarm
	s.mu.Unlock()
	if kind == "warm" && on != nil {
		on()
	}
	return s.countingStore.Acquire(ctx, lease, owner, ttl)
}

func (s *leaseCountingStore) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acquires[kind]
}

func warmKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("square/%d", i)
	}
	return keys
}

// Three gateways warming the same 1,000 keys over one store at once compute
// each key once in all, take one lease per bucket rather than one per key,
// and each ends with every key in memory.
func TestWarmSharesTheWorkAcrossGateways(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	ls := &leaseCountingStore{countingStore: f.store, acquires: map[string]int{}}
	keys := warmKeys(1000)
	caches := make([]*cache.Cache, 3)
	for i := range caches {
		caches[i] = f.cache(t, func(o *cache.Options) { o.Store = ls; o.Owner = fmt.Sprintf("gw%d", i) })
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, c := range caches {
		wg.Go(func() {
			var done atomic.Int64
			c.Warm(context.Background(), keys, cache.WarmOptions{OnKey: func(_ string, err error) {
				done.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}})
			require.Equal(t, int64(len(keys)), done.Load(), "every key reported once")
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	require.Equal(t, int64(len(keys)), f.counter("square").Load(), "each key computed once for the three")
	require.Zero(t, ls.count("prime"), "no per-key lease")
	require.LessOrEqual(t, ls.count("warm"), 3*16*3, "a few leases per bucket, not one per key")
	for _, c := range caches {
		for _, k := range keys {
			_, ok := c.Peek(k)
			require.True(t, ok, "%s in memory", k)
		}
	}
}

// A bucket whose lease another gateway holds is not computed: Warm comes back
// to it and reads what that gateway stored.
func TestWarmWaitsForABucketLeasedElsewhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	ls := &leaseCountingStore{countingStore: f.store, acquires: map[string]int{}}
	keys := warmKeys(10) // one bucket: warm/1/0
	other := f.cache(t, func(o *cache.Options) { o.Store = ls; o.Owner = "other" })
	c := f.cache(t, func(o *cache.Options) { o.Store = ls; o.Owner = "me" })
	ctx := context.Background()
	got, err := ls.Acquire(ctx, "warm/1/0", "other", time.Minute)
	require.NoError(t, err)
	require.True(t, got)

	// Once this gateway has found the lease taken, the other one stores
	// every key and releases its lease.
	var once sync.Once
	ls.mu.Lock()
	ls.onWarm = func() {
		if ls.count("warm") < 3 { // ours (the test's), then this gateway's first try
			return
		}
		once.Do(func() {
			for _, k := range keys {
				_, err := other.Get(ctx, k)
				require.NoError(t, err)
			}
			require.NoError(t, ls.Release(ctx, "warm/1/0", "other"))
		})
	}
	ls.mu.Unlock()

	var errs atomic.Int64
	c.Warm(ctx, keys, cache.WarmOptions{OnKey: func(_ string, err error) {
		if err != nil {
			errs.Add(1)
		}
	}})
	require.Zero(t, errs.Load())
	require.Equal(t, int64(len(keys)), f.counter("square").Load(), "computed by the other gateway only")
	for _, k := range keys {
		_, ok := c.Peek(k)
		require.True(t, ok)
	}
}

// Keys that fail are reported with their error; a bad key does not stop
// the others.
func TestWarmReportsFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	c := f.cache(t)
	errs := map[string]error{}
	var mu sync.Mutex
	c.Warm(context.Background(), []string{"square/1", "square/x", "nosuch/1", "square/2"}, cache.WarmOptions{OnKey: func(k string, err error) {
		mu.Lock()
		errs[k] = err
		mu.Unlock()
	}})
	require.Len(t, errs, 4)
	require.NoError(t, errs["square/1"])
	require.NoError(t, errs["square/2"])
	require.ErrorIs(t, errs["square/x"], primers.ErrBadParams)
	require.ErrorIs(t, errs["nosuch/1"], primers.ErrUnknownProduct)

	f.fail.Store(true)
	var failed error
	c.Warm(context.Background(), []string{"square/3"}, cache.WarmOptions{OnKey: func(_ string, err error) { failed = err }})
	var pe *cache.PrimerError
	require.ErrorAs(t, failed, &pe)
}

// newPutCountingStore is a countingStore that implements cache.NewPutter,
// counting the writes the cache made through it.
type newPutCountingStore struct {
	*countingStore
	putNews atomic.Int64
}

func (s *newPutCountingStore) PutNew(ctx context.Context, e cache.Entry) error {
	s.putNews.Add(1)
	return s.Store.Put(ctx, e)
}

// Warming reads each key once: a cold key under its bucket's lease (no
// second read before the primer runs; one read per bucket more, which
// tells a cold bucket from a stored one), written through PutNew since that
// read found nothing; a stored key in a fresh gateway (a restart) is read
// once, takes no lease and is not written.
func TestWarmReadsEachKeyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	st := &newPutCountingStore{countingStore: f.store}
	keys := warmKeys(500)
	warm := func(c *cache.Cache) {
		var failed atomic.Int64
		c.Warm(context.Background(), keys, cache.WarmOptions{OnKey: func(_ string, err error) {
			if err != nil {
				failed.Add(1)
			}
		}})
		require.Zero(t, failed.Load())
		for _, k := range keys {
			_, ok := c.Peek(k)
			require.True(t, ok, "%s in memory", k)
		}
	}

	ls := &leaseCountingStore{countingStore: f.store, acquires: map[string]int{}}
	leased := &leasedNewPutStore{newPutCountingStore: st, leases: ls}
	warm(f.cache(t, func(o *cache.Options) { o.Store = leased }))
	buckets := int64(ls.count("warm"))
	require.Positive(t, buckets)
	require.LessOrEqual(t, buckets, int64(16), "one lease per bucket of about 64 keys")
	require.Equal(t, int64(len(keys)), f.counter("square").Load(), "each key computed once")
	require.Equal(t, int64(len(keys))+buckets, f.store.gets.Load(), "one read per cold key, and one per bucket")
	require.Equal(t, int64(len(keys)), st.putNews.Load(), "every write a first one")
	require.Zero(t, f.store.puts.Load(), "no write with a version read")

	f.store.gets.Store(0)
	st.putNews.Store(0)
	warm(f.cache(t, func(o *cache.Options) { o.Store = leased }))
	require.Equal(t, int64(len(keys)), f.counter("square").Load(), "nothing computed again")
	require.Equal(t, int64(len(keys)), f.store.gets.Load(), "one read per stored key")
	require.Zero(t, st.putNews.Load()+f.store.puts.Load(), "nothing written")
	require.Equal(t, buckets, int64(ls.count("warm")), "no lease for stored buckets")
}

// leasedNewPutStore counts leases (leaseCountingStore) and first writes
// (newPutCountingStore) of one store.
type leasedNewPutStore struct {
	*newPutCountingStore
	leases *leaseCountingStore
}

func (s *leasedNewPutStore) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	return s.leases.Acquire(ctx, lease, owner, ttl)
}

// A miss read under the key's lease that finds nothing writes through
// PutNew; a refresh, which replaces a stored value, writes through Put.
func TestMissWritesThroughPutNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()})
	st := &newPutCountingStore{countingStore: f.store}
	c := f.cache(t, func(o *cache.Options) { o.Store = st })
	ctx := context.Background()
	_, err := c.Get(ctx, "square/7")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.putNews.Load())
	require.Zero(t, f.store.puts.Load())

	_, err = c.Refresh(ctx, "square/7")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.putNews.Load())
	require.Equal(t, int64(1), f.store.puts.Load())
}
