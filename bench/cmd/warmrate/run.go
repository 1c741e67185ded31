package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kck-go/kck/bench/internal/benchdoc"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/scheduler"
)

// Run measures every store and key count of cfg and prints one table.
func Run(ctx context.Context, w io.Writer, cfg Config) error {
	if cfg.ValueBytes <= 0 {
		cfg.ValueBytes = 1024
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	fmt.Fprintf(w, "warmrate: %d cores, load average %s, value %d bytes, concurrency %s\n\n",
		runtime.NumCPU(), benchdoc.LoadAvg(), cfg.ValueBytes, concName(cfg.Concurrency))
	fmt.Fprintln(w, "| store | keys | phase | seconds | keys/s | primer runs/key | store calls/key (mean ms each) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, kind := range cfg.Stores {
		for _, n := range cfg.Keys {
			rows, err := measure(ctx, cfg, kind, n)
			for _, r := range rows {
				fmt.Fprintf(w, "| %s | %d | %s | %.2f | %.0f | %.2f | %s |\n",
					kind, n, r.phase, r.elapsed.Seconds(), float64(n)/r.elapsed.Seconds(), float64(r.runs)/float64(n), r.calls.perKey(n))
			}
			if err != nil {
				return fmt.Errorf("%s, %d keys: %w", kind, n, err)
			}
		}
	}
	fmt.Fprintf(w, "\nload average after: %s\n", benchdoc.LoadAvg())
	return nil
}

func concName(c int) string {
	if c <= 0 {
		return "default"
	}
	return fmt.Sprint(c)
}

type row struct {
	phase   string
	elapsed time.Duration
	runs    int64
	calls   snapshot
}

// measure runs the three phases on a fresh store.
func measure(ctx context.Context, cfg Config, kind string, n int) ([]row, error) {
	inner, closeStore, err := openStore(ctx, cfg, kind)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	st := &counted{inner: inner}

	var runs atomic.Int64
	pad := strings.Repeat("x", max(0, cfg.ValueBytes-40))
	reg := primers.NewRegistry()
	err = reg.Register(primers.Product{
		Name:   "w",
		Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, i int64) (map[string]any, error) {
			runs.Add(1)
			return map[string]any{"n": i, "pad": pad}, nil
		}),
	})
	if err != nil {
		return nil, err
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("w/%d", i)
	}
	var rows []row
	phase := func(name string, fn func(c *cache.Cache) error) error {
		// A fresh cache per phase: a gateway booting (its in-process tier
		// empty), with room for every key.
		c, err := cache.New(cache.Options{Registry: reg, Store: st, MaxMemoryBytes: uint64(n) * uint64(cfg.ValueBytes+512)})
		if err != nil {
			return err
		}
		defer c.Close()
		runs.Store(0)
		st.reset()
		fmt.Fprintf(cfg.Log, "%s %d keys: %s...\n", kind, n, name)
		start := time.Now()
		err = fn(c)
		rows = append(rows, row{phase: name, elapsed: time.Since(start), runs: runs.Load(), calls: st.snapshot()})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, k := range keys {
			if _, ok := c.Peek(k); !ok {
				return fmt.Errorf("%s: %s is not in the in-process tier afterwards", name, k)
			}
		}
		return nil
	}
	warm := func(c *cache.Cache) error {
		var mu sync.Mutex
		var errs []error
		c.Warm(ctx, keys, cache.WarmOptions{Concurrency: cfg.Concurrency, OnKey: func(k string, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
				mu.Unlock()
			}
		}})
		if len(errs) > 0 {
			return fmt.Errorf("%d keys failed, the first: %w", len(errs), errs[0])
		}
		return ctx.Err()
	}
	if err := phase("warm, cold", warm); err != nil {
		return rows, err
	}
	if err := phase("warm, stored", warm); err != nil {
		return rows, err
	}
	if cfg.NoRefresh {
		return rows, nil
	}
	err = phase("refresh", func(c *cache.Cache) error {
		s, err := scheduler.New(scheduler.Options{Cache: c, Concurrency: cfg.RefreshConcurrency})
		if err != nil {
			return err
		}
		defer s.Close()
		if err := warm(c); err != nil { // not timed apart: cheap, every key stored
			return err
		}
		st.reset()
		runs.Store(0)
		return s.RefreshKeys(ctx, keys, time.Now())
	})
	return rows, err
}

func openStore(ctx context.Context, cfg Config, kind string) (cache.Store, func(), error) {
	switch kind {
	case "embedded":
		dir, err := os.MkdirTemp("", "warmrate-")
		if err != nil {
			return nil, nil, err
		}
		s, err := bolt.Open(dir, bolt.Options{})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return s, func() { s.Close(); os.RemoveAll(dir) }, nil
	case "cassandra":
		cc := cassandra.ConfigFromEnv()
		if len(cfg.CassandraHosts) > 0 {
			cc.Hosts = cfg.CassandraHosts
		}
		if len(cc.Hosts) == 0 {
			return nil, nil, errors.New("set KCK_CASSANDRA_HOSTS")
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		cc.Keyspace = "kck_warmrate_" + hex.EncodeToString(b[:])
		if err := cassandra.Migrate(ctx, cc, cassandra.Replication{Factor: min(3, len(cc.Hosts))}); err != nil {
			return nil, nil, err
		}
		drop := func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			_ = cassandra.DropKeyspace(dctx, cc)
		}
		s, err := cassandra.Open(ctx, cc)
		if err != nil {
			drop()
			return nil, nil, err
		}
		return s, func() { s.Close(); drop() }, nil
	case "postgres":
		url := cfg.PostgresURL
		if url == "" {
			url = os.Getenv("KCK_POSTGRES_URL")
		}
		if url == "" {
			return nil, nil, errors.New("set KCK_POSTGRES_URL")
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		pc := postgres.Config{URL: url, Schema: "kck_warmrate_" + hex.EncodeToString(b[:])}
		drop := func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = postgres.DropSchema(dctx, pc)
		}
		if _, _, err := postgres.Migrate(ctx, pc); err != nil {
			drop()
			return nil, nil, err
		}
		s, err := postgres.Open(ctx, pc)
		if err != nil {
			drop()
			return nil, nil, err
		}
		return s, func() { s.Close(); drop() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q (embedded, cassandra or postgres)", kind)
}

// counted is a cache.Store that counts each call by
// operation, with its time, so that a run can say where a key's time goes.
type counted struct {
	inner cache.Store
	mu    sync.Mutex
	ops   map[string]*opStat
}

type opStat struct {
	n     int64
	total time.Duration
}

type snapshot map[string]opStat

func (c *counted) track(op string, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	if c.ops == nil {
		c.ops = map[string]*opStat{}
	}
	s := c.ops[op]
	if s == nil {
		s = &opStat{}
		c.ops[op] = s
	}
	s.n++
	s.total += d
	c.mu.Unlock()
}

func (c *counted) reset() {
	c.mu.Lock()
	c.ops = nil
	c.mu.Unlock()
}

func (c *counted) snapshot() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := snapshot{}
	for k, v := range c.ops {
		out[k] = *v
	}
	return out
}

func (s snapshot) perKey(n int) string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		v := s[k]
		parts = append(parts, fmt.Sprintf("%s %.2f (%.2f)", k, float64(v.n)/float64(n), v.total.Seconds()*1e3/float64(v.n)))
	}
	return strings.Join(parts, ", ")
}

func (c *counted) Get(ctx context.Context, key string) (cache.Entry, error) {
	defer c.track("get", time.Now())
	return c.inner.Get(ctx, key)
}

func (c *counted) Put(ctx context.Context, e cache.Entry) error {
	defer c.track("put", time.Now())
	return c.inner.Put(ctx, e)
}

func (c *counted) Delete(ctx context.Context, key string, version uint64) error {
	defer c.track("delete", time.Now())
	return c.inner.Delete(ctx, key, version)
}

func (c *counted) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	defer c.track("acquire", time.Now())
	return c.inner.Acquire(ctx, lease, owner, ttl)
}

func (c *counted) Release(ctx context.Context, lease, owner string) error {
	defer c.track("release", time.Now())
	return c.inner.Release(ctx, lease, owner)
}

func (c *counted) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }
func (c *counted) Close() error                   { return nil }

// PutNew counts as a put: it is one, with one round trip less on stores
// that implement it.
func (c *counted) PutNew(ctx context.Context, e cache.Entry) error {
	defer c.track("put", time.Now())
	if np, ok := c.inner.(cache.NewPutter); ok {
		return np.PutNew(ctx, e)
	}
	return c.inner.Put(ctx, e)
}
