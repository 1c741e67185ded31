package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/otlptest"
	"github.com/kck-go/kck/tracing"
)

// BenchmarkHitTracing compares, in one run, the GraphQL hit with tracing
// off and on with 1 % of traces sampled (what production runs), exporting
// to an OTLP sink in this process; then, apart (its exporter's
// background work would fall on the others), with every trace sampled. An
// unsampled hit pays for the sampler's decision (a header lookup and a
// random number); a sampled one records and exports its span, and answers
// with traceresponse.
//
// The forms are those of BenchmarkHitAuth: three rounds of each, whose
// medians bench/run.sh compares, and the interleaved form, whose ratios
// (x tracing-off throughput, wall and thread CPU) load from outside moves
// less.
func BenchmarkHitTracing(b *testing.B) {
	off := newRig(b)
	p1 := newTracedRig(b, 0.01)
	all := newTracedRig(b, 1)
	run := func(b *testing.B, r *rig) {
		const batch = 1024
		reqs := make([]*http.Request, batch)
		ws := make([]*discard, batch)
		build := func(i0 int) {
			for k := range reqs {
				reqs[k] = post(r.bodies[(i0+k)%len(r.bodies)])
				ws[k] = &discard{h: http.Header{}}
			}
		}
		calls, primes := r.store.calls.Load(), r.primes.Load()
		var cpu time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		for i0 := 0; i0 < b.N; i0 += batch {
			b.StopTimer()
			build(i0)
			b.StartTimer()
			cpu += serveHits(r.h, ws[:min(batch, b.N-i0)], reqs)
			b.StopTimer()
			for k := 0; k < batch && i0+k < b.N; k++ {
				if j := (i0 + k) % len(r.bodies); ws[k].n != len(r.want[j]) {
					b.Fatalf("author %d: wrote %d bytes, want %d", j+1, ws[k].n, len(r.want[j]))
				}
			}
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		if d := r.store.calls.Load() - calls; d != 0 {
			b.Fatalf("hits made %d store calls", d)
		}
		if d := r.primes.Load() - primes; d != 0 {
			b.Fatalf("hits ran %d primers", d)
		}
	}
	for range 3 {
		b.Run("off", func(b *testing.B) { run(b, off) })
		b.Run("sampled-1pct", func(b *testing.B) { run(b, p1) })
	}
	b.Run("interleaved", func(b *testing.B) {
		interleaveHits(b, 64, false, []*hitMode{{name: "off", r: off}, {name: "p1", r: p1}})
	})
	b.Run("sampled-all", func(b *testing.B) { run(b, all) })
}

// newTracedRig is newRig with tracing on, ratio of traces sampled,
// exporting over OTLP/HTTP to a sink in this process that discards what it
// gets, as a collector that keeps up does (the exporter's work, in the
// background, shares the machine with the hits; the sink's is little).
func newTracedRig(b testing.TB, ratio float64) *rig {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf") // an empty ExportTraceServiceResponse
	}))
	b.Cleanup(sink.Close)
	t, err := tracing.Open(context.Background(), tracing.Config{Endpoint: sink.URL, SampleRatio: ratio,
		Getenv: func(string) string { return "" }}, tracing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = t.Shutdown(context.Background()) })
	return newRig(b, func(o *gateway.Options) { o.TracerProvider = t.TracerProvider() })
}

// TestTracedHitIsTraced is the benchmark's premise, always run: with every
// trace sampled, a hit is a request span saying the response cache
// answered, exported to the receiver, and the response says its trace.
func TestTracedHitIsTraced(t *testing.T) {
	rec := otlptest.Start(t)
	tr, err := tracing.Open(context.Background(), tracing.Config{Endpoint: rec.URL(), SampleRatio: 1,
		Getenv: func(k string) string { return map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "10"}[k] }}, tracing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	r := newRig(t, func(o *gateway.Options) { o.TracerProvider = tr.TracerProvider() })
	w := &discard{h: http.Header{}}
	r.h.ServeHTTP(w, post(r.bodies[0])) // a hit: the rig's warm-up kept it
	resp := w.h.Get("Traceresponse")
	if len(resp) != 55 {
		t.Fatalf("traceresponse %q", resp)
	}
	rec.Wait(10*time.Second, func(s []otlptest.Span) bool {
		_, ok := otlptest.Find(otlptest.Trace(s, resp[3:35]), "POST /graphql", map[string]string{"kck.response_cache": "hit"})
		return ok
	})
	hitTouchesNothing(t, r)
}
