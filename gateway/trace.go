package gateway

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/tracing"
)

// With Options.TracerProvider set, each request of a sampled trace is a
// server span: the child of the traceparent it came with (W3C Trace
// Context; the sampling decision is then the caller's), else the first of
// a trace, sampled by the provider's ratio. Its traceparent goes back in
// the traceresponse header (Trace Context level 2), and every line the
// request logs carries its trace_id (tracing.LogHandler), so that an
// operator finds a client's request in the traces and the logs alike. The
// spans below it (the response cache, fields, cache tiers, leases,
// primers, SQL, store calls) exist only in a sampled trace.
//
// An unsampled request is not traced at all: the sampler is asked before
// any span exists (tracing.Sampler), and the request goes on untouched,
// with no span, no context, no header: no trace of it will exist to look
// up. An unsampled hit costs a header lookup and a random number more than
// with tracing off (15 to 30 ns with the headers in the CPU's caches; see
// bench/README.md); making a span, a context and a header for every
// request cost several hundred.
//
// Not traced: WebSocket connections (a span of hours helps nobody; each
// product read for a subscription is bounded on its own) and the
// operators' probes, scrapes and console polls (/healthz, /readyz,
// /metrics, GET /admin/...), which would fill traces with noise.

// requestTracer starts requests' spans.
type requestTracer struct {
	t trace.Tracer
	// sampler tells the decision before a span is made; nil for a provider
	// that cannot, whose requests all get a span (recorded or not).
	sampler tracing.Sampler
	// server is the spans' options, made once: a request allocates no
	// option slice.
	server []trace.SpanStartOption
}

func newRequestTracer(tp trace.TracerProvider) *requestTracer {
	if tp == nil {
		return nil
	}
	rt := &requestTracer{t: tp.Tracer(tracing.Scope), server: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}}
	rt.sampler, _ = tp.(tracing.Sampler)
	return rt
}

// traced reports whether r may get a span.
func traced(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	if r.Method != http.MethodGet {
		return true // a WebSocket's upgrade is a GET
	}
	if strings.HasPrefix(r.URL.Path, "/admin") {
		return false // the console's page and its polls; its actions (POST) are traced
	}
	// gqlhttp.IsWebSocket, without canonicalising the header's name.
	u := r.Header["Upgrade"]
	return len(u) == 0 || !strings.EqualFold(u[0], "websocket")
}

// start begins r's span and sets traceresponse when r's trace is sampled.
// It returns r with the span in its context, and w, which records the
// status for the span; ok is false (and w and r are as given) when the
// trace is not sampled.
func (rt *requestTracer) start(w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, _ *http.Request, _ trace.Span, ok bool) {
	// Canonical keys, read directly: Header.Get would canonicalise
	// "traceparent" anew on every request.
	var parent trace.SpanContext
	if v := r.Header["Traceparent"]; len(v) == 1 {
		parent, _ = tracing.ParseTraceParent(v[0])
	}
	var tid trace.TraceID
	if rt.sampler != nil {
		var sampled bool
		if tid, sampled = rt.sampler.Sample(parent); !sampled {
			return w, r, nil, false
		}
	}
	ctx := r.Context()
	if parent.IsValid() {
		if ts := r.Header["Tracestate"]; len(ts) > 0 {
			if st, err := trace.ParseTraceState(strings.Join(ts, ",")); err == nil {
				parent = parent.WithTraceState(st)
			}
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	} else if rt.sampler != nil {
		ctx = tracing.WithTraceID(ctx, tid) // the id the sampler was asked about
	}
	route := routeOf(r)
	ctx, span := rt.t.Start(ctx, spanName(r.Method, route), rt.server...)
	w.Header()["Traceresponse"] = []string{tracing.TraceParent(span.SpanContext())}
	if span.IsRecording() {
		var a [4]attribute.KeyValue
		attrs := append(a[:0], semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path))
		if route != "" {
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		if ua := r.Header["User-Agent"]; len(ua) > 0 {
			attrs = append(attrs, semconv.UserAgentOriginal(ua[0]))
		}
		span.SetAttributes(attrs...)
		w = &statusWriter{ResponseWriter: w}
	}
	return w, r.WithContext(ctx), span, true
}

// end ends r's span with the response's status.
func (rt *requestTracer) end(w http.ResponseWriter, span trace.Span) {
	sw, ok := w.(*statusWriter)
	if !ok || !span.IsRecording() {
		span.End()
		return
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status)) // a server's failure, not a client's
	}
	span.End()
}

// routeOf is r's route, as the mux patterns name it ("" when none
// matches): a span name must not grow with the paths clients make up.
func routeOf(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/graphql", p == "/fetch", p == "/update", p == "/":
		return p
	case strings.HasPrefix(p, "/fetch/"):
		return "/fetch/{key...}"
	case strings.HasPrefix(p, playgroundPrefix):
		return playgroundPrefix + "{file}"
	case p == "/admin" || strings.HasPrefix(p, "/admin/"):
		return "/admin/"
	}
	return ""
}

// spanName is "METHOD route" for the common routes without building a
// string per request (an unsampled request's name is never read).
func spanName(method, route string) string {
	switch route {
	case "/graphql":
		switch method {
		case http.MethodPost:
			return "POST /graphql"
		case http.MethodGet:
			return "GET /graphql"
		}
	case "/fetch":
		if method == http.MethodGet {
			return "GET /fetch"
		}
	case "/update":
		if method == http.MethodPost {
			return "POST /update"
		}
	case "":
		return method
	}
	return method + " " + route
}

// statusWriter notes the status a response was written with, for a
// recorded span.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush and Hijack pass through, for handlers that test for them.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// rcOutcome says on the request's span, in a sampled trace, what the
// response cache did: hit or miss (kept, see noteKept, replaces miss). An
// attribute, not a span of its own: a hit is the request's whole work.
func (s *Server) rcOutcome(ctx context.Context, outcome string) {
	if s.tracer == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(tracing.AttrResponseCache.String(outcome))
	}
}

// noteKept says on the request's span that its response was kept.
func (s *Server) noteKept(ctx context.Context) {
	if s.tracer == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(tracing.AttrResponseCache.String("kept"))
		span.AddEvent("response kept in the response cache")
	}
}
