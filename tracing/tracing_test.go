package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/internal/otlptest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for _, tc := range []struct {
		name string
		cfg  tracing.Config
		env  map[string]string
		on   bool
		err  string // part of the error, naming the setting
	}{
		{name: "nothing configured: off", cfg: tracing.Config{SampleRatio: -1}},
		{name: "flag endpoint", cfg: tracing.Config{Endpoint: "http://collector:4318", SampleRatio: -1}, on: true},
		{name: "generic variable", cfg: tracing.Config{SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/base/"}, on: true},
		{name: "traces variable", cfg: tracing.Config{SampleRatio: 0.01}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, on: true},
		{name: "grpc", cfg: tracing.Config{Endpoint: "http://c:4317", Protocol: "grpc", SampleRatio: -1}, on: true},
		{name: "grpc from the variable", cfg: tracing.Config{Endpoint: "http://c:4317", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{name: "disabled wins", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "sampler from the variables", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1},
			env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, on: true},

		{name: "endpoint not a URL", cfg: tracing.Config{Endpoint: "collector:4318", SampleRatio: -1}, err: `--otel-endpoint (KCK_OTEL_ENDPOINT) "collector:4318"`},
		{name: "endpoint bad port", cfg: tracing.Config{SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:99999"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "endpoint scheme", cfg: tracing.Config{SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "grpc with a path", cfg: tracing.Config{Endpoint: "http://c:4317/x", Protocol: "grpc", SampleRatio: -1}, err: "--otel-endpoint"},
		{name: "protocol", cfg: tracing.Config{Endpoint: "http://c:4318", Protocol: "udp", SampleRatio: -1}, err: `--otel-protocol (KCK_OTEL_PROTOCOL) "udp"`},
		{name: "protocol variable", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, err: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "ratio", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: 1.5}, err: "--trace-sample-ratio"},
		{name: "sampler", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, err: "OTEL_TRACES_SAMPLER"},
		{name: "sampler arg", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "exporter", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "OTEL_TRACES_EXPORTER"},
		{name: "disabled not a bool", cfg: tracing.Config{SampleRatio: -1}, env: map[string]string{"OTEL_SDK_DISABLED": "yes please"}, err: "OTEL_SDK_DISABLED"},
		{name: "queue size", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-3"}, err: "OTEL_BSP_MAX_QUEUE_SIZE"},
		{name: "batch above queue", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}, err: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"},
		{name: "timeout", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, err: "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{name: "headers", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key"}, err: "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
		{name: "compression", cfg: tracing.Config{Endpoint: "http://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, err: "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{name: "certificate missing", cfg: tracing.Config{Endpoint: "https://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": filepath.Join(dir, "none.pem")}, err: "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{name: "client key pair", cfg: tracing.Config{Endpoint: "https://c:4318", SampleRatio: -1}, env: map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY": notPEM}, err: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
		// A bad variable fails even with tracing off by want of an
		// endpoint: it is a setting someone meant.
		{name: "bad sampler without endpoint", cfg: tracing.Config{SampleRatio: -1}, env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, err: "OTEL_TRACES_SAMPLER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Getenv = env(tc.env)
			err := tc.cfg.Check()
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.False(t, tc.cfg.On())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.on, tc.cfg.On())
		})
	}
}

// open starts tracing to rec over protocol with every trace sampled.
func open(t *testing.T, url, protocol string, reg prometheus.Registerer, extra map[string]string) *tracing.Tracing {
	t.Helper()
	e := map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "10"}
	for k, v := range extra {
		e[k] = v
	}
	tr, err := tracing.Open(context.Background(), tracing.Config{Endpoint: url, Protocol: protocol, SampleRatio: 1, ServiceName: "kck-test", Getenv: env(e)},
		tracing.Options{Registerer: reg})
	require.NoError(t, err)
	require.NotNil(t, tr)
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

func TestExportsOverHTTPAndGRPC(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{tracing.HTTPProtobuf, tracing.GRPC} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			rec := otlptest.Start(t)
			url := rec.URL()
			if protocol == tracing.GRPC {
				url = rec.GRPCURL()
			}
			reg := prometheus.NewRegistry()
			tr := open(t, url, protocol, reg, nil)
			tracer := tr.TracerProvider().Tracer("test")
			ctx, root := tracer.Start(context.Background(), "root")
			_, child := tracing.Child(ctx, "child")
			child.End()
			root.End()
			spans := rec.Wait(10*time.Second, func(s []otlptest.Span) bool { return otlptest.Path(s, "root", "child") })
			r, _ := otlptest.Find(spans, "root", nil)
			assert.Equal(t, "kck-test", r.Service)
			assert.Equal(t, root.SpanContext().TraceID().String(), r.TraceID)
			require.NoError(t, tr.Shutdown(context.Background()))
			assert.Equal(t, 2.0, metrictest.Value(t, reg, "kck_trace_spans_exported_total"))
		})
	}
}

// A collector that refuses exports, or a queue that overflows, never
// blocks the span's owner: the spans are dropped and counted.
func TestDropsAndCounts(t *testing.T) {
	t.Parallel()
	t.Run("collector down", func(t *testing.T) {
		t.Parallel()
		rec := otlptest.Start(t)
		rec.Fail(true)
		reg := prometheus.NewRegistry()
		// No retries: the test waits for the count, not for the
		// exporter's backoff.
		tr := open(t, rec.URL(), tracing.HTTPProtobuf, reg, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "2000", "OTEL_BSP_EXPORT_TIMEOUT": "300"})
		tracer := tr.TracerProvider().Tracer("test")
		start := time.Now()
		for range 10 {
			_, s := tracer.Start(context.Background(), "lost")
			s.End()
		}
		assert.Less(t, time.Since(start), time.Second, "ending spans does not wait for the collector")
		waitFor(t, func() bool { return metrictest.Value(t, reg, "kck_trace_spans_dropped_total", "export_failed") == 10 })
		assert.Zero(t, metrictest.Value(t, reg, "kck_trace_spans_exported_total"))
	})
	t.Run("queue full", func(t *testing.T) {
		t.Parallel()
		rec := otlptest.Start(t)
		reg := prometheus.NewRegistry()
		// A long delay holds the spans in the queue of 4: the fifth and
		// later are dropped at once.
		tr := open(t, rec.URL(), tracing.HTTPProtobuf, reg, map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_BSP_MAX_QUEUE_SIZE": "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4"})
		tracer := tr.TracerProvider().Tracer("test")
		for range 10 {
			_, s := tracer.Start(context.Background(), "many")
			s.End()
		}
		// The batch processor exports a full batch at once: wait for it,
		// then the count holds what did not fit.
		rec.Wait(10*time.Second, func(s []otlptest.Span) bool { return len(s) >= 4 })
		require.NoError(t, tr.Shutdown(context.Background()))
		spans := rec.Spans()
		dropped := metrictest.Value(t, reg, "kck_trace_spans_dropped_total", "queue_full")
		assert.Positive(t, dropped)
		assert.Equal(t, 10.0, dropped+float64(len(spans)), "every span is exported or counted as dropped")
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20 s")
		}
		time.Sleep(10 * time.Millisecond) // polling a counter that has no channel
	}
}

func TestTraceParent(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	tp := tracing.TraceParent(sc)
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tp)
	got, ok := tracing.ParseTraceParent(tp)
	require.True(t, ok)
	assert.True(t, got.IsRemote())
	assert.Equal(t, sc.TraceID(), got.TraceID())
	assert.Equal(t, sc.SpanID(), got.SpanID())
	assert.True(t, got.IsSampled())
	assert.Empty(t, tracing.TraceParent(trace.SpanContext{}))

	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true}, // a later version, read as 00
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, // upper case
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"", false},
	} {
		_, ok := tracing.ParseTraceParent(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
	}
}

func FuzzParseTraceParent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-")
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := tracing.ParseTraceParent(s)
		if !ok {
			return
		}
		// What parses formats back to the same IDs.
		again, ok2 := tracing.ParseTraceParent(tracing.TraceParent(sc))
		if !ok2 || again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("%q does not round-trip", s)
		}
	})
}

func TestChildOnlyUnderARecordedSpan(t *testing.T) {
	t.Parallel()
	ctx, span := tracing.Child(context.Background(), "nothing")
	assert.False(t, span.IsRecording())
	assert.Equal(t, context.Background(), ctx, "no span: the context is the caller's")
	span.End()

	rec := otlptest.Start(t)
	tr := open(t, rec.URL(), tracing.HTTPProtobuf, nil, nil)
	tracer := tr.TracerProvider().Tracer("test")
	cause, causeSpan := tracer.Start(context.Background(), "cause")
	causeSpan.End()
	_, root := tracing.Root(cause, tracer, "own trace", causeSpan.SpanContext())
	root.End()
	spans := rec.Wait(10*time.Second, func(s []otlptest.Span) bool { return len(s) == 2 })
	r, _ := otlptest.Find(spans, "own trace", nil)
	c, _ := otlptest.Find(spans, "cause", nil)
	assert.NotEqual(t, c.TraceID, r.TraceID, "a trace of its own")
	assert.Empty(t, r.Parent)
	assert.Equal(t, []otlptest.Link{{TraceID: c.TraceID, SpanID: c.SpanID}}, r.Links)
}

// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestChildUnderNoSpanAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, s := tracing.Child(context.Background(), "x")
		s.End()
	})
	assert.Zero(t, allocs)
}

func TestLogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	log.Info("no span")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "in a request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	assert.NotContains(t, lines[0], "trace_id")
	assert.Contains(t, lines[1], `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`)
	assert.Contains(t, lines[1], `"span_id":"00f067aa0ba902b7"`)
	assert.Contains(t, lines[1], `"component":"test"`)
}

func TestPgxTracer(t *testing.T) {
	t.Parallel()
	rec := otlptest.Start(t)
	tr := open(t, rec.URL(), tracing.HTTPProtobuf, nil, nil)
	cfg, err := pgx.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	cfg.Tracer = tracing.PgxTracer{}
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)

	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&n), "a query under no span is not traced")
	sctx, span := tr.TracerProvider().Tracer("test").Start(ctx, "primer")
	require.NoError(t, conn.QueryRow(sctx, "-- a product\nSELECT $1::int + 1", 41).Scan(&n))
	_, err = conn.Exec(sctx, "SELECT no_such_column")
	require.Error(t, err)
	span.End()
	spans := rec.Wait(10*time.Second, func(s []otlptest.Span) bool { return len(s) == 3 })
	sel, ok := otlptest.Find(spans, "SELECT", map[string]string{"db.system.name": "postgresql"})
	require.True(t, ok, otlptest.Dump(spans))
	assert.Equal(t, "-- a product\nSELECT $1::int + 1", sel.Attrs["db.query.text"])
	assert.NotContains(t, sel.Attrs, "41", "arguments are not recorded")
	assert.True(t, otlptest.Path(spans, "primer", "SELECT"))
	failed := 0
	for _, s := range spans {
		if s.Failed {
			failed++
		}
	}
	assert.Equal(t, 1, failed, "the failed statement's span is marked failed")
}
