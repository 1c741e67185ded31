package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// titlesOf is the demo's title_list under another name, with no schema
// line: served by graph/dynamic as titlesOf(authorId: Int!): [Title!],
// while title_list is the compiled field titleList, from the same SQL.
const titlesOf = `-- kck:product titles_of(author_id int)
-- kck:auth public
-- kck:type Title
SELECT id, author_id AS "authorId", title, year
FROM titles
WHERE author_id = :author_id
ORDER BY year, id
`

// dynRig is one gateway serving both fields from one cache, over the demo
// dataset in PostgreSQL: a compiled and a dynamic field compared on the same
// process, cache and database, in one run.
type dynRig struct {
	cache    *cache.Cache
	hit, run http.Handler // with the response cache; without (every request executes)
	bodies   [2][][]byte  // [compiled, dynamic] one request per author
	keys     [2][]string
}

const (
	compiledQ = `{"query":"query($a: Int!) { titleList(authorId: $a) { id title year } }","variables":{"a":%d}}`
	dynamicQ  = `{"query":"query($a: Int!) { titlesOf(authorId: $a) { id title year } }","variables":{"a":%d}}`
)

func newDynRig(b testing.TB) *dynRig {
	b.Helper()
	ctx := context.Background()
	pool, err := source.Open(ctx, pgtest.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := demo.Load(ctx, pool, demo.NewDataset()); err != nil {
		b.Fatal(err)
	}
	decls, err := sqlproduct.LoadFS(demo.SQL())
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "titles_of.sql"), []byte(titlesOf), 0o644); err != nil {
		b.Fatal(err)
	}
	more, err := sqlproduct.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	decls.Products = append(decls.Products, more.Products...)
	var api *sqlproduct.API
	if err := pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		if errs := sqlproduct.Types(ctx, c.Conn(), decls); len(errs) > 0 {
			return errs[0]
		}
		api, err = sqlproduct.DescribeAPI(ctx, c.Conn(), decls)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	reg := primers.NewRegistry()
	if _, err := sqlproduct.Register(reg, pool, decls, nil); err != nil {
		b.Fatal(err)
	}
	r := &dynRig{}
	if r.cache, err = cache.New(cache.Options{Registry: reg, Store: memory.New()}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.cache.Close() })
	gw := func(respCache int64) http.Handler {
		metrics := prometheus.NewRegistry()
		h, err := gateway.New(gateway.Options{Cache: r.cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Registerer: metrics, Gatherer: metrics, ResponseCacheBytes: respCache, MaxMissesPerRequest: -1,
			Extend: app.Extend(api, reg, false)})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	r.hit, r.run = gw(0), gw(-1)
	for a := 1; a <= demo.NumAuthors; a++ {
		r.bodies[0] = append(r.bodies[0], []byte(fmt.Sprintf(compiledQ, a)))
		r.bodies[1] = append(r.bodies[1], []byte(fmt.Sprintf(dynamicQ, a)))
		r.keys[0] = append(r.keys[0], fmt.Sprintf("title_list/%d", a))
		r.keys[1] = append(r.keys[1], fmt.Sprintf("titles_of/%d", a))
		// The two fields answer the same data.
		var got [2]map[string]json.RawMessage
		for k := range 2 {
			rec := httptest.NewRecorder()
			r.hit.ServeHTTP(rec, post(r.bodies[k][a-1]))
			var rep struct {
				Data   map[string]json.RawMessage `json:"data"`
				Errors []any                      `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || len(rep.Errors) > 0 || rec.Code != 200 {
				b.Fatalf("author %d: %d %s", a, rec.Code, rec.Body)
			}
			got[k] = rep.Data
		}
		var c, d any
		_ = json.Unmarshal(got[0]["titleList"], &c)
		_ = json.Unmarshal(got[1]["titlesOf"], &d)
		if fmt.Sprint(c) != fmt.Sprint(d) {
			b.Fatalf("author %d: the fields differ:\n%s\n%s", a, got[0]["titleList"], got[1]["titlesOf"])
		}
	}
	return r
}

// BenchmarkDynamicField compares, in one run, on one gateway, the compiled
// field titleList (gqlgen: the value decoded into Go structs, marshalled by
// generated code) and the dynamic field titlesOf (graph/dynamic: projected
// from the cached JSON), both the SQL product of the same statement, with
// the same selection, over the 300 demo authors:
//
//   - hit: a response-cache hit (the gateway's usual hit: no executor);
//   - resolve: the response cache off, so every request runs the executor
//     and the field (the in-process tier hits): where the two differ;
//   - miss: each key invalidated first (not timed), so each request
//     computes it: the store read that misses, the primer's query on
//     PostgreSQL, the store write, the field.
//
// The kinds take turns, 32 requests at a time, each turn timed: load from
// outside falls on both alike. Reported: the median ns per request of
// each kind's turns (compiled-ns, dynamic-ns), dynamic-x, the dynamic
// field's throughput over the compiled one's by those medians (at least
// 0.9 is the bar), and dynamic-cpu-x, the same by the serving thread's CPU
// time (which leaves out the time other work holds the core).
func BenchmarkDynamicField(b *testing.B) {
	r := newDynRig(b)
	for _, mode := range []string{"hit", "resolve", "miss"} {
		b.Run(mode, func(b *testing.B) {
			h := r.run
			if mode == "hit" {
				h = r.hit
			}
			const turn = 32
			var turns [2][]float64 // ns per request of each turn
			var cpu [2]time.Duration
			var counts [2]int
			ctx := context.Background()
			ws := make([]*discard, turn)
			reqs := make([]*http.Request, turn)
			b.ReportAllocs()
			b.ResetTimer()
			for i0, t := 0, 0; i0 < b.N; i0, t = i0+turn, t+1 {
				n := min(turn, b.N-i0)
				for j := range 2 {
					k := (t + j) % 2 // who goes first alternates
					b.StopTimer()
					for q := range n {
						a := (i0 + q) % demo.NumAuthors
						if mode == "miss" {
							if err := r.cache.Invalidate(ctx, r.keys[k][a]); err != nil {
								b.Fatal(err)
							}
						}
						reqs[q], ws[q] = post(r.bodies[k][a]), &discard{h: http.Header{}}
					}
					b.StartTimer()
					t0 := time.Now()
					cpu[k] += serveHits(h, ws[:n], reqs)
					turns[k] = append(turns[k], float64(time.Since(t0))/float64(n))
					counts[k] += n
					b.StopTimer()
					for q := range n {
						if ws[q].code != 0 && ws[q].code != 200 || ws[q].n < 100 {
							b.Fatalf("%s %d: status %d, %d bytes", mode, k, ws[q].code, ws[q].n)
						}
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			// Medians of the turns: a turn the machine's other work
			// preempted weighs as one turn, not as its milliseconds.
			c, d := median(turns[0]), median(turns[1])
			b.ReportMetric(c, "compiled-ns/op")
			b.ReportMetric(d, "dynamic-ns/op")
			b.ReportMetric(c/d, "dynamic-x")
			if mode != "miss" { // a miss waits on PostgreSQL, which no thread's CPU time shows
				b.ReportMetric(float64(cpu[0])/float64(counts[0])/(float64(cpu[1])/float64(counts[1])), "dynamic-cpu-x")
			}
		})
	}
	// Each field alone, for its allocations (the interleaved runs report
	// both kinds' together).
	for k, name := range []string{"compiled", "dynamic"} {
		b.Run("resolve-alone/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				w := &discard{h: http.Header{}}
				r.run.ServeHTTP(w, post(r.bodies[k][i%demo.NumAuthors]))
				if w.n < 100 {
					b.Fatalf("%s: %d bytes", name, w.n)
				}
			}
		})
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// The two fields answer alike on every run of the tests, and a dynamic
// field's hit touches neither the store nor a primer (checked in
// newDynRig's warm-up, and here for the hit).
func TestDynamicFieldBench(t *testing.T) {
	t.Parallel()
	r := newDynRig(t)
	rec := httptest.NewRecorder()
	r.run.ServeHTTP(rec, post(r.bodies[1][0]))
	if rec.Code != 200 || !bytes.Contains(rec.Body.Bytes(), []byte(`"titlesOf":[{"id":`)) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
