package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/otlptest"
	"github.com/kck-go/kck/tracing"
)

// tracedEnv is newEnv with tracing on, ratio of new traces sampled,
// exporting to a receiver in this process.
func tracedEnv(t *testing.T, ratio float64) (*env, *otlptest.Receiver) {
	t.Helper()
	rec := otlptest.Start(t)
	tr, err := tracing.Open(context.Background(), tracing.Config{Endpoint: rec.URL(), SampleRatio: ratio,
		Getenv: func(k string) string { return map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "10"}[k] }}, tracing.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	e := newEnvWith(t, func(_ *env, o *cache.Options) { o.TracerProvider = tr.TracerProvider() },
		func(o *gateway.Options) { o.TracerProvider = tr.TracerProvider() })
	return e, rec
}

func TestTracedRequests(t *testing.T) {
	t.Parallel()
	e, rec := tracedEnv(t, 1)
	const sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	for _, tc := range []struct {
		name, method, path, body, traceparent string
		// traced: a span and a traceresponse naming the trace.
		traced bool
		trace  string // the trace it continues; "" a new one
		status string
	}{
		{name: "a GraphQL request", method: "POST", path: "/graphql", body: gqlBody(`{ author(authorId: 3) { name } }`), traced: true, status: "200"},
		{name: "the caller's sampled trace", method: "POST", path: "/graphql", body: gqlBody(`{ author(authorId: 4) { name } }`),
			traceparent: sampled, traced: true, trace: "4bf92f3577b34da6a3ce929d0e0e4736", status: "200"},
		{name: "the caller's unsampled trace", method: "POST", path: "/graphql", body: gqlBody(`{ author(authorId: 5) { name } }`),
			traceparent: "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{name: "a malformed traceparent starts a trace", method: "GET", path: "/fetch?key=author/6", traceparent: "00-zz-00", traced: true, status: "200"},
		{name: "a client error", method: "GET", path: "/fetch?key=nope/1", traced: true, status: "404"},
		{name: "a probe", method: "GET", path: "/readyz"},
		{name: "a scrape", method: "GET", path: "/metrics"},
		{name: "the console", method: "GET", path: "/admin/api/overview"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.traceparent != "" {
				hdr = append(hdr, "traceparent", tc.traceparent)
			}
			r := e.do(t, tc.method, tc.path, tc.body, hdr...)
			tr := r.header.Get("traceresponse")
			if !tc.traced {
				assert.Empty(t, tr, "no trace, no traceresponse")
				return
			}
			sc, ok := tracing.ParseTraceParent(tr)
			require.True(t, ok, "traceresponse %q", tr)
			assert.True(t, sc.IsSampled())
			if tc.trace != "" {
				assert.Equal(t, tc.trace, sc.TraceID().String())
			}
			spans := rec.Wait(10*time.Second, func(s []otlptest.Span) bool {
				_, ok := otlptest.Find(otlptest.Trace(s, sc.TraceID().String()), tc.method+"*", nil)
				return ok
			})
			root, _ := otlptest.Find(otlptest.Trace(spans, sc.TraceID().String()), tc.method+"*", nil)
			assert.Equal(t, sc.SpanID().String(), root.SpanID)
			assert.Equal(t, tc.status, root.Attrs["http.response.status_code"])
			assert.Equal(t, strings.Split(tc.path, "?")[0], root.Attrs["url.path"])
			if tc.trace != "" {
				assert.Equal(t, "00f067aa0ba902b7", root.Parent)
			}
		})
	}
	// Only the traced requests were exported: nothing for the unsampled
	// caller, the probe, the scrape or the console.
	for _, s := range rec.Spans() {
		assert.NotEqual(t, "5bf92f3577b34da6a3ce929d0e0e4736", s.TraceID)
		assert.NotContains(t, []string{"/readyz", "/metrics", "/admin/api/overview"}, s.Attrs["url.path"])
	}
}

// With no trace sampled, nothing is traced and no request carries a
// trace: not the response, not the context (no log line names one).
func TestUnsampledRequestsAreUntouched(t *testing.T) {
	t.Parallel()
	e, rec := tracedEnv(t, 0)
	for range 20 {
		r := e.do(t, http.MethodPost, "/graphql", gqlBody(`{ author(authorId: 3) { name } }`))
		require.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, r.header.Get("traceresponse"))
	}
	assert.Empty(t, rec.Spans())
	assert.Zero(t, rec.Requests(), "nothing exported")
}
