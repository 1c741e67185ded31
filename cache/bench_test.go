package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

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

// BenchmarkGetStored measures a read that misses the in-process tier and
// is served by the store: 3,000 keys read in turn through a tier bounded to
// almost nothing (store-hits/op says how many reads the store served), by
// key string (Get, which parses it) and by the typed key a GraphQL field
// builds (GetKey, which does not), in the same run.
func BenchmarkGetStored(b *testing.B) {
	s, err := bolt.Open(b.TempDir(), bolt.Options{})
	require.NoError(b, err)
	defer s.Close()
	reg := primers.NewRegistry()
	require.NoError(b, reg.Register(primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()}))
	c, err := cache.New(cache.Options{Registry: reg, Store: s, MaxMemoryBytes: 1})
	require.NoError(b, err)
	defer c.Close()
	ctx := context.Background()
	keys := make([]primers.Key, 3000)
	for i := range keys {
		keys[i], err = reg.Key("square", i)
		require.NoError(b, err)
		_, err := c.Get(ctx, keys[i].String())
		require.NoError(b, err)
	}
	read := map[string]func(k primers.Key) (cache.Result, error){
		"string": func(k primers.Key) (cache.Result, error) { return c.Get(ctx, k.String()) },
		"key":    func(k primers.Key) (cache.Result, error) { return c.GetKey(ctx, k) },
	}
	for _, name := range []string{"string", "key"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			stored, n := 0, 0
			for ; b.Loop(); n++ {
				r, err := read[name](keys[n%len(keys)])
				if err != nil {
					b.Fatal(err)
				}
				if r.Tier == cache.TierStore {
					stored++
				}
			}
			// The in-process tier's eviction runs behind its writes: over
			// few keys, a read can still find a value there.
			b.ReportMetric(float64(stored)/float64(n), "store-hits/op")
			if stored < n*9/10 {
				b.Fatalf("%d of %d reads were store hits", stored, n)
			}
		})
	}
}

// BenchmarkScrape measures a /metrics gather of a cache holding 100,000
// values: the baseline with no freshness target, then with one on the
// product, which walks the in-process tier (freshness.go).
func BenchmarkScrape(b *testing.B) {
	const n = 100_000
	for _, tc := range []struct {
		name   string
		target time.Duration
	}{{"no-target", 0}, {"target", time.Minute}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := bolt.Open(b.TempDir(), bolt.Options{})
			require.NoError(b, err)
			defer s.Close()
			reg := primers.NewRegistry()
			require.NoError(b, reg.Register(primers.Product{Name: "square", Params: intParam, Primer: squarePrimer(), FreshnessTarget: tc.target}))
			prom := prometheus.NewRegistry()
			c, err := cache.New(cache.Options{Registry: reg, Store: s, Registerer: prom})
			require.NoError(b, err)
			defer c.Close()
			ctx := context.Background()
			// Filled from many goroutines, so that the store's group commit
			// shares the writes' fsyncs.
			var g errgroup.Group
			g.SetLimit(64)
			for i := range n {
				g.Go(func() error { _, err := c.Get(ctx, fmt.Sprintf("square/%d", i)); return err })
			}
			require.NoError(b, g.Wait())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := prom.Gather(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/value")
		})
	}
}

// BenchmarkApplyAnnouncement is what one announcement from another gateway
// costs a gateway: decode its wire form and apply it, for a key it holds
// (the 1 KiB value replaces its copy) and for one it does not (dropped).
// docs/scaling.md multiplies it by the announcements a gateway receives.
func BenchmarkApplyAnnouncement(b *testing.B) {
	s, err := bolt.Open(b.TempDir(), bolt.Options{})
	require.NoError(b, err)
	defer s.Close()
	reg := primers.NewRegistry()
	require.NoError(b, reg.Register(primers.Product{Name: "square", Params: intParam, Primer: squarePrimer()}))
	bus := &fakeBus{}
	c, err := cache.New(cache.Options{Registry: reg, Store: s, Bus: bus, Owner: "me"})
	require.NoError(b, err)
	defer c.Close()
	const held = 1000
	for i := range held {
		_, err := c.Get(context.Background(), fmt.Sprintf("square/%d", i))
		require.NoError(b, err)
	}
	value := []byte(`"` + string(make([]byte, 1000)) + `"`)
	for i := range value[1 : len(value)-1] {
		value[1+i] = 'x'
	}
	for _, tc := range []struct {
		name string
		key  func(i int) string
	}{
		{"held", func(i int) string { return fmt.Sprintf("square/%d", i%held) }},
		{"not_held", func(i int) string { return fmt.Sprintf("square/%d", held+i%held) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			msgs := make([][]byte, 1024)
			seq := uint64(0)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%len(msgs) == 0 {
					b.StopTimer()
					for j := range msgs {
						seq++
						ch := cache.Change{Key: tc.key(i + j), Version: uint64(time.Now().UnixMicro()) + seq, Origin: "peer", Seq: seq, At: time.Now()}
						ch.Entry = &cache.Entry{Key: ch.Key, Version: ch.Version, Value: value, ComputedAt: time.Now()}
						msgs[j] = ch.AppendBinary(nil)
					}
					b.StartTimer()
				}
				ch, err := cache.ParseChange(msgs[i%len(msgs)])
				if err != nil {
					b.Fatal(err)
				}
				bus.deliver(ch)
			}
		})
	}
}
