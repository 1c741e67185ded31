package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/primers"
)

// BenchmarkWarmCassandra measures boot warming of keys no gateway has
// computed yet, on Cassandra, by three gateways (caches with their own
// sessions) booting together: each key read through Get with its own lease
// (how warming ran before: two lightweight transactions per key), against
// cache.Warm (one lease per bucket), in the same run. Both run 32 keys at once
// per gateway. It reports keys/s (keys warmed into all three gateways, per
// second) and the primer runs per key (1 is no duplicate work).
// WARM_KEYS (default 2000) sets the keys per iteration.
func BenchmarkWarmCassandra(b *testing.B) {
	ks := cassandratest.Keyspace(b)
	n := envInt("WARM_KEYS", 2000)
	var runs atomic.Int64
	reg := primers.NewRegistry()
	if err := reg.Register(primers.Product{
		Name:   "sq",
		Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, i int64) (map[string]int64, error) {
			runs.Add(1)
			return map[string]int64{"n": i, "sq": i * i}, nil
		}),
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	gateways := make([]*cassandra.Store, 3)
	for i := range gateways {
		s, err := cassandra.Open(ctx, ks)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		gateways[i] = s
	}
	round := 0
	warm := func(b *testing.B, each func(c *cache.Cache, keys []string)) {
		var keysWarmed int
		start := time.Now()
		runs.Store(0)
		for b.Loop() {
			round++
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("sq/%d", round*n+i)
			}
			var wg sync.WaitGroup
			for _, s := range gateways {
				c, err := cache.New(cache.Options{Registry: reg, Store: s, PollInterval: 20 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					defer c.Close()
					each(c, keys)
					for _, k := range keys {
						if _, ok := c.Peek(k); !ok {
							b.Errorf("%s not warmed", k)
							return
						}
					}
				})
			}
			wg.Wait()
			keysWarmed += n
		}
		b.ReportMetric(float64(keysWarmed)/time.Since(start).Seconds(), "keys/s")
		b.ReportMetric(float64(runs.Load())/float64(keysWarmed), "runs/key")
	}
	b.Run("per-key-lease", func(b *testing.B) {
		warm(b, func(c *cache.Cache, keys []string) {
			sem := make(chan struct{}, 32)
			var wg sync.WaitGroup
			for _, k := range keys {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					if _, err := c.Get(ctx, k); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		})
	})
	b.Run("bucket-lease", func(b *testing.B) {
		warm(b, func(c *cache.Cache, keys []string) {
			c.Warm(ctx, keys, cache.WarmOptions{Concurrency: 32, OnKey: func(k string, err error) {
				if err != nil {
					b.Error(k, err)
				}
			}})
		})
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
