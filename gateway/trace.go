package gateway

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/tracing"
)

// With Options.TracerProvider set, each request is a server span: the
// child of the traceparent it came with (W3C Trace Context; the sampling
// decision is the caller's then), else the first of a trace, sampled by
// the provider's ratio. Its traceparent goes back in the traceresponse
// header (Trace Context level 2), sampled or not, and every line the
// request logs carries its trace_id (tracing.LogHandler), so that an
// operator finds a client's request in both. Spans below it (the response
// cache, fields, cache tiers, leases, primers, SQL, store calls) exist
// only in a sampled trace: an unsampled hit costs a few hundred
// nanoseconds more than with tracing off (bench/README.md).
//
// Not traced: WebSocket connections (a span of hours helps nobody; each
// product read for a subscription is bounded on its own) and the
// operators' probes and scrapes (/healthz, /readyz, /metrics), which
// would fill traces with noise.

// requestTracer starts requests' spans.
type requestTracer struct {
	t trace.Tracer
	// server is the spans' options, made once: a request allocates no
	// option slice.
	server []trace.SpanStartOption
}

func newRequestTracer(tp trace.TracerProvider) *requestTracer {
	if tp == nil {
		return nil
	}
	return &requestTracer{t: tp.Tracer(tracing.Scope), server: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}}
}

// traced reports whether r gets a span.
func traced(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	return !graph.IsWebSocket(r)
}

// start begins r's span and sets traceresponse. It returns r with the span
// in its context, and w, which records the status when the span does.
func (rt *requestTracer) start(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, trace.Span) {
	ctx := r.Context()
	// Canonical keys, read directly: Header.Get would canonicalise
	// "traceparent" anew on every request.
	if v := r.Header["Traceparent"]; len(v) == 1 {
		if sc, ok := tracing.ParseTraceParent(v[0]); ok {
			if ts := r.Header["Tracestate"]; len(ts) > 0 {
				if st, err := trace.ParseTraceState(strings.Join(ts, ",")); err == nil {
					sc = sc.WithTraceState(st)
				}
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	route := routeOf(r)
	ctx, span := rt.t.Start(ctx, spanName(r.Method, route), rt.server...)
	w.Header()["Traceresponse"] = []string{tracing.TraceParent(span.SpanContext())}
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path))
		if route != "" {
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		if ua := r.Header["User-Agent"]; len(ua) > 0 {
			span.SetAttributes(semconv.UserAgentOriginal(ua[0]))
		}
		w = &statusWriter{ResponseWriter: w}
	}
	return w, r.WithContext(ctx), span
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

// rcSpan starts the span of a response-cache lookup (kck.response_cache);
// a span that records nothing when tracing is off or the trace unsampled.
func (s *Server) rcSpan(r *http.Request) trace.Span {
	if s.tracer == nil {
		return noop.Span{}
	}
	_, span := tracing.Child(r.Context(), "kck.response_cache")
	return span
}

// rcOutcome ends a lookup's span with its outcome (hit or miss), and says
// it on the request's span too.
func rcOutcome(ctx context.Context, span trace.Span, outcome string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(tracing.AttrResponseCache.String(outcome))
	span.End()
	trace.SpanFromContext(ctx).SetAttributes(tracing.AttrResponseCache.String(outcome))
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
