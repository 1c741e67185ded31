package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of KCK's spans.
const Scope = "github.com/kck-go/kck"

// KCK's span attributes.
const (
	// AttrKey is a product instance's key (title_list/42).
	AttrKey = attribute.Key("kck.key")
	// AttrProduct is a product's name.
	AttrProduct = attribute.Key("kck.product")
	// AttrTier is where a read was served from: memory, store, computed.
	AttrTier = attribute.Key("kck.tier")
	// AttrHit says whether a lookup found what it looked for.
	AttrHit = attribute.Key("kck.hit")
	// AttrStale says a value served was past its soft expiry.
	AttrStale = attribute.Key("kck.stale")
	// AttrTrigger is why a refresh ran: source_change, schedule, queue,
	// stale, dependency, rule.
	AttrTrigger = attribute.Key("kck.trigger")
	// AttrResponseCache is a GraphQL request's response-cache outcome:
	// hit, miss, kept.
	AttrResponseCache = attribute.Key("kck.response_cache")
)

// Child starts span name under ctx's span when that span is recorded (its
// trace is sampled), with the tracer of the provider that made it;
// otherwise it returns ctx and a span that records nothing, having cost a
// context lookup.
func Child(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noop.Span{}
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

// Recording reports whether ctx's span is recorded: whether Child would
// make a span.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// Root starts span name with t as the first of a trace of its own, linked
// to cause when cause is valid (what made the work happen: a source
// change, a scheduled job, the request that queued it). With t nil it
// returns ctx and a span that records nothing.
func Root(ctx context.Context, t trace.Tracer, name string, cause trace.SpanContext, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noop.Span{}
	}
	opts = append(opts[:len(opts):len(opts)], trace.WithNewRoot()) // never into the caller's array
	if cause.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: cause}))
	}
	return t.Start(ctx, name, opts...)
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceParent is sc as a W3C traceparent header value
// (00-<trace id>-<span id>-<flags>), "" when sc is not valid.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [traceParentLen]byte
	return string(appendTraceParent(b[:0], sc))
}

const traceParentLen = 55

// appendTraceParent appends sc's traceparent to dst.
func appendTraceParent(dst []byte, sc trace.SpanContext) []byte {
	const digits = "0123456789abcdef"
	hex := func(dst []byte, b []byte) []byte {
		for _, c := range b {
			dst = append(dst, digits[c>>4], digits[c&15])
		}
		return dst
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex(dst, tid[:])
	dst = append(dst, '-')
	dst = hex(dst, sid[:])
	dst = append(dst, '-')
	return hex(dst, []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
}

// ParseTraceParent reads a W3C traceparent header value into a remote span
// context; false when it is malformed (the caller then starts a trace of
// its own, as the specification says). Versions after 00 are read as 00.
func ParseTraceParent(s string) (trace.SpanContext, bool) {
	if len(s) < traceParentLen || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	var ver [1]byte
	if !unhex(ver[:], s[0:2]) || ver[0] == 0xff || ver[0] == 0 && len(s) != traceParentLen ||
		len(s) > traceParentLen && s[traceParentLen] != '-' {
		return trace.SpanContext{}, false
	}
	var (
		tid   trace.TraceID
		sid   trace.SpanID
		flags [1]byte
	)
	if !unhex(tid[:], s[3:35]) || !unhex(sid[:], s[36:52]) || !unhex(flags[:], s[53:55]) {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid,
		TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true})
	return sc, sc.IsValid()
}

// unhex decodes lower-case hex s into dst (len(s) == 2*len(dst)).
func unhex(dst []byte, s string) bool {
	val := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	for i := range dst {
		hi, ok1 := val(s[2*i])
		lo, ok2 := val(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}
