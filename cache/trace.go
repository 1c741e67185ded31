package cache

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kck-go/kck/tracing"
)

// span starts span name under ctx's when tracing is on and ctx's span is
// recorded; otherwise it returns ctx and a span that records nothing.
func (c *Cache) span(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if c.tracer == nil || !tracing.Recording(ctx) {
		return ctx, noop.Span{}
	}
	return c.tracer.Start(ctx, name, opts...)
}

// bgTrace is how a refresh that runs in the background is traced: as a
// child of parent (an assignment from another gateway, a dispatch), or
// else as a trace of its own linked to link (what caused it), with its
// trigger named.
type bgTrace struct {
	trigger      string
	parent, link trace.SpanContext
}

// Triggers of background refreshes, as kck.trigger says them.
const (
	triggerStale        = "stale"
	triggerDependency   = "dependency"
	triggerRule         = "rule"
	triggerSourceChange = "source_change"
)

// refreshSpan starts the span of a background refresh of key.
func (c *Cache) refreshSpan(ctx context.Context, key string, bt bgTrace) (context.Context, trace.Span) {
	if c.tracer == nil {
		return ctx, noop.Span{}
	}
	attrs := trace.WithAttributes(tracing.AttrKey.String(key), tracing.AttrTrigger.String(bt.trigger))
	if bt.parent.IsValid() {
		kind := trace.SpanKindInternal
		if bt.parent.IsRemote() {
			kind = trace.SpanKindConsumer // handed over by another gateway
		}
		return c.tracer.Start(trace.ContextWithSpanContext(ctx, bt.parent), "kck.refresh", attrs, trace.WithSpanKind(kind))
	}
	return tracing.Root(ctx, c.tracer, "kck.refresh", bt.link, attrs)
}
