package cache_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/primers"
)

// BenchmarkGetHit measures the in-process hit path of Get: the cost every
// hot product read pays. It must not allocate or touch the store.
func BenchmarkGetHit(b *testing.B) {
	s, err := bolt.Open(b.TempDir(), bolt.Options{})
	require.NoError(b, err)
	defer s.Close()
	counted := &countingStore{Store: s}
	reg := primers.NewRegistry()
	require.NoError(b, reg.Register(primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()}))
	c, err := cache.New(cache.Options{Registry: reg, Store: counted})
	require.NoError(b, err)
	defer c.Close()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("square/%d", i)
		_, err := c.Get(context.Background(), keys[i])
		require.NoError(b, err)
	}
	gets := counted.gets.Load()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r, err := c.Get(ctx, keys[i%len(keys)])
			if err != nil || r.Tier != cache.TierMemory {
				b.Fatalf("not a memory hit: %v %v", r.Tier, err)
			}
			i++
		}
	})
	b.StopTimer()
	if counted.gets.Load() != gets {
		b.Fatalf("hits read the store %d times", counted.gets.Load()-gets)
	}
}
