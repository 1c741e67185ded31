// Package bench holds KCK's benchmarks and load tool. Figures and how to
// reproduce them are in README.md; `make bench` runs everything.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/ratelimit"
)

// countingStore counts the store calls a hit must not make.
type countingStore struct {
	cache.Store
	calls atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (cache.Entry, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, key)
}

func (s *countingStore) Put(ctx context.Context, e cache.Entry) error {
	s.calls.Add(1)
	return s.Store.Put(ctx, e)
}

// rig is the real gateway over a counting store, with the demo products
// wrapped to count primer runs, warmed with one query per author.
type rig struct {
	h      http.Handler
	store  *countingStore
	primes atomic.Int64
	bodies [][]byte // one request per author
	want   [][]byte // the gateway's responses to them
}

const query = `{"query":"query($a: Int!) { titleList(authorId: $a) { id title year } }","variables":{"a":%d}}`

func newRig(b testing.TB, mod ...func(*gateway.Options)) *rig {
	b.Helper()
	s, err := bolt.Open(b.TempDir(), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return newRigOn(b, s, mod...)
}

// newRigOn is newRig over store s.
func newRigOn(b testing.TB, s cache.Store, mod ...func(*gateway.Options)) *rig {
	b.Helper()
	r := &rig{}
	r.store = &countingStore{Store: s}
	reg := primers.NewRegistry()
	if err := demo.Register(reg, demo.NewDataset()); err != nil {
		b.Fatal(err)
	}
	// Count primer runs through a wrapping registry.
	counted := primers.NewRegistry()
	for _, p := range reg.Products() {
		p := *p
		inner := p.Primer
		p.Primer = primers.PrimerFunc(func(ctx context.Context, k primers.Key) (any, error) {
			r.primes.Add(1)
			return inner.Prime(ctx, k)
		})
		p.Augment = nil
		if err := counted.Register(p); err != nil {
			b.Fatal(err)
		}
	}
	// The updaters as they are: the schema's typed mutations name them.
	for _, name := range reg.UpdaterNames() {
		u, err := reg.Updater(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := counted.RegisterUpdaterAuth(name, u, reg.UpdaterAuth(name)); err != nil {
			b.Fatal(err)
		}
	}
	metrics := prometheus.NewRegistry()
	o := gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: metrics, Gatherer: metrics}
	for _, m := range mod {
		m(&o)
	}
	// The cache traces when the gateway does, as app wires them.
	c, err := cache.New(cache.Options{Registry: counted, Store: r.store, TracerProvider: o.TracerProvider})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	o.Cache = c
	r.h, err = gateway.New(o)
	if err != nil {
		b.Fatal(err)
	}
	for a := 1; a <= demo.NumAuthors; a++ {
		body := []byte(fmt.Sprintf(query, a))
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, post(body))
		if rec.Code != 200 || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
			b.Fatalf("warm-up: %d %s", rec.Code, rec.Body)
		}
		r.bodies = append(r.bodies, body)
		r.want = append(r.want, rec.Body.Bytes())
	}
	return r
}

func post(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the handler, not a recorder's buffer.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// staticHandler is the ceiling: a plain handler that reads the request body,
// looks up the rig's response for it and writes the bytes.
func staticHandler(r *rig) http.Handler {
	byBody := make(map[string][]byte, len(r.bodies))
	for i, body := range r.bodies {
		byBody[string(body)] = r.want[i]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var buf [512]byte
		n, _ := io.ReadFull(req.Body, buf[:])
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(byBody[string(buf[:n])])
	})
}

// BenchmarkHit compares, in one run, the gateway's GraphQL hit with a plain
// handler that looks up and writes the same bytes (the ceiling). Both read
// the request body. The hit must touch neither the store nor a primer.
func BenchmarkHit(b *testing.B) {
	r := newRig(b)
	static := staticHandler(r)
	run := func(b *testing.B, r *rig, h http.Handler, acceptEncoding ...string) {
		reqs := make([]*http.Request, len(r.bodies))
		calls, primes := r.store.calls.Load(), r.primes.Load()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % len(reqs)
			req := post(r.bodies[j]) // a fresh body reader each time, as a server makes
			if acceptEncoding != nil {
				req.Header["Accept-Encoding"] = acceptEncoding
			}
			reqs[j] = req
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, req)
			if acceptEncoding != nil {
				if w.n == 0 || w.n > len(r.want[j]) {
					b.Fatalf("author %d: wrote %d bytes, want at most %d", j+1, w.n, len(r.want[j]))
				}
			} else if w.n != len(r.want[j]) {
				b.Fatalf("author %d: wrote %d bytes, want %d", j+1, w.n, len(r.want[j]))
			}
		}
		b.StopTimer()
		if d := r.store.calls.Load() - calls; d != 0 {
			b.Fatalf("hits made %d store calls", d)
		}
		if d := r.primes.Load() - primes; d != 0 {
			b.Fatalf("hits ran %d primers", d)
		}
	}
	b.Run("static", func(b *testing.B) { run(b, r, static) })
	b.Run("gateway", func(b *testing.B) { run(b, r, r.h) })
	// With per-client rate limits on (every budget, none reached): a hit
	// pays the client's address and a bucket's map lookup.
	limited := newRig(b, rateLimited(b))
	b.Run("gateway-ratelimited", func(b *testing.B) { run(b, limited, limited.h) })
	// The same hits served compressed (stored bytes; below 512 bytes,
	// identity).
	b.Run("gateway-gzip", func(b *testing.B) { run(b, r, r.h, "gzip") })
	b.Run("gateway-zstd", func(b *testing.B) { run(b, r, r.h, "zstd") })
	// Without the response cache every hit runs the field resolvers: the
	// typed key, the caller's check and the cache's in-process hit.
	resolve := newRig(b, func(o *gateway.Options) { o.ResponseCacheBytes = -1 })
	b.Run("resolve", func(b *testing.B) { run(b, resolve, resolve.h) })
	// With tracing on (exporting to an OTLP sink in this process), 1 %
	// of traces sampled, what production runs: see BenchmarkHitTracing.
	traced := newTracedRig(b, 0.01)
	b.Run("gateway-traced-1pct", func(b *testing.B) { run(b, traced, traced.h) })
}

// TestHitTouchesNothing is the always-run form of the benchmark's assertion:
// warm queries are answered with the same bytes, without the store or a primer,
// on the embedded store and on the PostgreSQL store.
func TestHitTouchesNothing(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { hitTouchesNothing(t, newRig(t)) })
	t.Run("postgres", func(t *testing.T) { hitTouchesNothing(t, newRigOn(t, pgstoretest.Open(t))) })
}

func hitTouchesNothing(t *testing.T, r *rig) {
	calls, primes := r.store.calls.Load(), r.primes.Load()
	for range 3 {
		for j, body := range r.bodies {
			rec := httptest.NewRecorder()
			r.h.ServeHTTP(rec, post(body))
			if !bytes.Equal(rec.Body.Bytes(), r.want[j]) {
				t.Fatalf("author %d: response changed", j+1)
			}
		}
	}
	if d := r.store.calls.Load() - calls; d != 0 {
		t.Fatalf("hits made %d store calls", d)
	}
	if d := r.primes.Load() - primes; d != 0 {
		t.Fatalf("hits ran %d primers", d)
	}
}

// BenchmarkHitHTTP is BenchmarkHit over loopback HTTP, 64 connections
// (RunParallel with 32 goroutines per core), client and server in this
// process: the form to profile the hit path under load with
// -cpuprofile/-memprofile (focus on net/http.(*conn).serve for the server's
// share). Each response's length is checked.
func BenchmarkHitHTTP(b *testing.B) {
	r := newRig(b)
	static := staticHandler(r)
	// Each server is checked against its own rig's answers: another
	// rig's cache holds other versions and times, whose lengths differ.
	run := func(b *testing.B, r *rig, h http.Handler, acceptEncoding []string) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64, DisableCompression: true}}
		defer client.CloseIdleConnections()
		var next atomic.Int64
		b.SetParallelism(32)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 4096)
			for pb.Next() {
				j := int(next.Add(1)) % len(r.bodies)
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(r.bodies[j]))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header["Content-Type"] = []string{"application/json"}
				if acceptEncoding != nil {
					req.Header["Accept-Encoding"] = acceptEncoding
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				buf = buf[:0]
				for err == nil {
					var n int
					if len(buf) == cap(buf) {
						buf = append(buf, 0)[:len(buf)]
					}
					n, err = resp.Body.Read(buf[len(buf):cap(buf)])
					buf = buf[:len(buf)+n]
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || len(buf) == 0 || len(buf) > len(r.want[j]) || acceptEncoding == nil && len(buf) != len(r.want[j]) {
					b.Errorf("author %d: %d, %d bytes", j+1, resp.StatusCode, len(buf))
					return
				}
			}
		})
	}
	b.Run("static", func(b *testing.B) { run(b, r, static, nil) })
	b.Run("gateway", func(b *testing.B) { run(b, r, r.h, nil) })
	limited := newRig(b, rateLimited(b))
	b.Run("gateway-ratelimited", func(b *testing.B) { run(b, limited, limited.h, nil) })
	b.Run("gateway-zstd", func(b *testing.B) { run(b, r, r.h, []string{"zstd"}) })
}

// rateLimited turns every per-client budget on, too large to be reached.
func rateLimited(b testing.TB) func(*gateway.Options) {
	return func(o *gateway.Options) {
		big := ratelimit.Rate{PerSecond: 1e9, Burst: 1 << 30}
		l, err := ratelimit.New(ratelimit.Config{Requests: big, Misses: big, Subscriptions: big, Connections: big})
		if err != nil {
			b.Fatal(err)
		}
		o.RateLimit = l
	}
}

// manyKeys is the 300-key query of bench/README.md: one request reading
// titleList of authors 1 to n, each under its own alias.
func manyKeys(n int) []byte {
	var q strings.Builder
	q.WriteString("{ ")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&q, "a%d: titleList(authorId: %d) { id title year } ", i, i)
	}
	q.WriteString("}")
	return fmt.Appendf(nil, `{"query":%q}`, q.String())
}

// BenchmarkHitKeys is BenchmarkHit for the 300-key query: the plain handler
// writing its bytes against the gateway's hit, identity and zstd. A hit
// checks the version of each of the 300 products it holds.
func BenchmarkHitKeys(b *testing.B) {
	r := newRig(b, func(o *gateway.Options) {
		o.Limits = gqlhttp.Limits{MaxAliases: 400, MaxRootFields: 400, MaxFields: 3000, MaxComplexity: 20000}
	})
	body := manyKeys(demo.NumAuthors)
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, post(body))
	if rec.Code != 200 || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
		b.Fatalf("warm-up: %d %.300s", rec.Code, rec.Body)
	}
	want := rec.Body.Bytes()
	static := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		buf := make([]byte, len(body)+1)
		n, _ := io.ReadFull(req.Body, buf)
		if n != len(body) {
			b.Errorf("read %d bytes", n)
		}
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(want)
	})
	run := func(b *testing.B, h http.Handler, acceptEncoding []string) {
		calls, primes := r.store.calls.Load(), r.primes.Load()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req := post(body)
			if acceptEncoding != nil {
				req.Header["Accept-Encoding"] = acceptEncoding
			}
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, req)
			if w.n == 0 || w.n > len(want) || acceptEncoding == nil && w.n != len(want) {
				b.Fatalf("wrote %d bytes, want %d", w.n, len(want))
			}
		}
		b.StopTimer()
		if d := r.store.calls.Load() - calls; d != 0 {
			b.Fatalf("hits made %d store calls", d)
		}
		if d := r.primes.Load() - primes; d != 0 {
			b.Fatalf("hits ran %d primers", d)
		}
	}
	b.Run("static", func(b *testing.B) { run(b, static, nil) })
	b.Run("gateway", func(b *testing.B) { run(b, r.h, nil) })
	b.Run("gateway-zstd", func(b *testing.B) { run(b, r.h, []string{"zstd"}) })
}
