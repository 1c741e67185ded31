// Package tracing is KCK's OpenTelemetry tracing: the tracer provider a
// gateway exports its spans with over OTLP (HTTP or gRPC), configured by
// OpenTelemetry's OTEL_* variables and kck's flags (Config), and the small
// pieces the other packages trace with: a span under the caller's only
// when the caller's is recorded (Child), a trace of its own linked to what
// caused it (Root), W3C traceparent as text for what crosses a process
// (TraceParent, ParseTraceParent: the refresh queue, the change bus), a
// pgx query tracer (PgxTracer) and a log handler that adds the trace to
// each line (LogHandler).
//
// What it promises: with tracing off (Open returns nil) nothing is
// created, and callers that hold no tracer pay nothing on their hit paths.
// With it on, a span is recorded only in a sampled trace; spans ended wait
// in a bounded queue for the exporter, so a collector that is slow or
// unreachable never slows or fails a request: spans that do not fit, or
// whose export failed, are dropped and counted
// (kck_trace_spans_dropped_total). Shutdown sends what is queued.
package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/internal/collector"
)

// Options are what Open takes besides the Config.
type Options struct {
	// Logger says where spans go at start, and why exports fail (at most
	// once a minute). Default: discard.
	Logger *slog.Logger
	// Registerer receives kck_trace_spans_exported_total and
	// kck_trace_spans_dropped_total; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Tracing is an open tracer provider exporting over OTLP. A nil *Tracing
// is tracing off: its methods do nothing.
type Tracing struct {
	tp *sdktrace.TracerProvider
	p  provider
}

// Sampler is a TracerProvider that tells its sampler's decision before a
// span is made (Tracing's does): a hot path that does nothing for an
// unsampled request (the gateway's) asks first, and starts a span, with
// WithTraceID, only for a sampled one.
type Sampler interface {
	// Sample reports whether a span whose parent is parent (invalid: none)
	// would be recorded, and if so the id of its trace: the parent's, or
	// a new one to give the span with WithTraceID. An unsampled decision
	// costs a random number at most.
	Sample(parent trace.SpanContext) (tid trace.TraceID, sampled bool)
}

// provider is the SDK's provider with Sample.
type provider struct {
	*sdktrace.TracerProvider
	parentBased bool
	// The root sampler's rule, as the SDK's TraceIDRatioBased applies it
	// (TestSampleAgreesWithTheSDK): a trace is recorded when the low 63
	// bits of its id's last 8 bytes are below bound; all: every trace.
	all   bool
	bound uint64
}

var _ Sampler = provider{}

func newProvider(tp *sdktrace.TracerProvider, s settings) provider {
	p := provider{TracerProvider: tp, parentBased: s.parentBased, all: s.ratio >= 1}
	if s.ratio > 0 && s.ratio < 1 {
		p.bound = uint64(s.ratio * (1 << 63))
	}
	return p
}

func (p provider) Sample(parent trace.SpanContext) (trace.TraceID, bool) {
	if parent.IsValid() {
		if p.parentBased {
			return parent.TraceID(), parent.IsSampled() // the SDK's ParentBased, with its default choices
		}
		return parent.TraceID(), p.sampled(parent.TraceID())
	}
	if !p.all && p.bound == 0 {
		return trace.TraceID{}, false // never
	}
	// The half of the id the rule reads first: the rest only when sampled.
	var tid trace.TraceID
	binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	if !p.sampled(tid) {
		return trace.TraceID{}, false
	}
	for binary.NativeEndian.PutUint64(tid[:8], rand.Uint64()); !tid.IsValid(); {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
	}
	return tid, true
}

func (p provider) sampled(tid trace.TraceID) bool {
	return p.all || binary.BigEndian.Uint64(tid[8:16])>>1 < p.bound
}

type traceIDKey struct{}

// WithTraceID returns ctx with the trace id the next span without a parent
// started under it gets: the one a Sampler was asked about.
func WithTraceID(ctx context.Context, tid trace.TraceID) context.Context {
	return context.WithValue(ctx, traceIDKey{}, tid)
}

// newTraceID is a random trace id, as the SDK makes them.
func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

// ids is the SDK's random IDs, but a root span's trace id is WithTraceID's
// when its context has one.
type ids struct{}

func (ids) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(traceIDKey{}).(trace.TraceID)
	if !ok {
		tid = newTraceID()
	}
	return tid, newSpanID()
}

func (ids) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// Open starts the tracer provider cfg describes, or returns nil, nil when
// cfg turns tracing off. It fails, naming the setting, on a setting that
// cannot work (see Config.Check); it does not connect: a collector that
// does not answer costs dropped spans, never a failed start.
func Open(ctx context.Context, cfg Config, opts Options) (*Tracing, error) {
	s, err := cfg.resolve()
	if err != nil || !s.on {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	name := cfg.ServiceName
	if name == "" {
		name = "kck"
	}
	// The variables come last: OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES win over the default name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(semconv.ServiceName(name)), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	var exp sdktrace.SpanExporter
	if s.protocol == GRPC {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(s.url))
	} else {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.url))
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter (%s %s): %w", s.protocol, s.url, err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ce := &countingExporter{next: exp, exported: m.exported, failed: m.exportFailed, log: log}
	bsp := sdktrace.NewBatchSpanProcessor(ce,
		sdktrace.WithMaxQueueSize(s.queue), sdktrace.WithMaxExportBatchSize(s.batch),
		sdktrace.WithBatchTimeout(s.delay), sdktrace.WithExportTimeout(s.exportTimeout))
	g := &gate{next: bsp, max: int64(s.queue), pending: &ce.pending, dropped: m.queueFull}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s.sampler), sdktrace.WithResource(res), sdktrace.WithSpanProcessor(g),
		sdktrace.WithIDGenerator(ids{}))
	log.Info("tracing: exporting spans over OTLP", "protocol", s.protocol, "endpoint", s.url, "sampler", s.sampler.Description(),
		"queue", s.queue)
	return &Tracing{tp: tp, p: newProvider(tp, s)}, nil
}

// TracerProvider is the provider to make spans with, a Sampler too; nil
// when t is.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.p
}

// Shutdown exports the spans queued, within ctx, and stops the provider:
// spans ended later are not sent. Calling it again does nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

type metrics struct {
	exported, exportFailed, queueFull prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_trace_spans_dropped_total",
		Help: "Sampled spans not exported, by reason: queue_full (more spans waited for the exporter than the queue holds, OTEL_BSP_MAX_QUEUE_SIZE), export_failed (the collector did not take them).",
	}, []string{"reason"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kck_trace_spans_exported_total",
		Help: "Sampled spans the collector took.",
	})
	if reg != nil {
		var err error
		if dropped, err = collector.Register(reg, dropped); err != nil {
			return metrics{}, fmt.Errorf("tracing: metrics: %w", err)
		}
		if exported, err = collector.Register(reg, exported); err != nil {
			return metrics{}, fmt.Errorf("tracing: metrics: %w", err)
		}
	}
	return metrics{exported: exported, exportFailed: dropped.WithLabelValues("export_failed"), queueFull: dropped.WithLabelValues("queue_full")}, nil
}

// gate bounds the spans ended and not yet exported by the queue's size
// and counts those it drops: the batch processor drops a span that does
// not fit without telling anyone. It sits in front of the batch
// processor, whose queue then never overflows (it holds at most what the
// gate let through and the exporter has not had).
type gate struct {
	next    sdktrace.SpanProcessor
	max     int64
	pending *atomic.Int64 // decremented by the exporter
	dropped prometheus.Counter
}

func (g *gate) OnStart(context.Context, sdktrace.ReadWriteSpan) {} // the batch processor's does nothing

func (g *gate) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the batch processor exports sampled spans only
	}
	if g.pending.Add(1) > g.max {
		g.pending.Add(-1)
		g.dropped.Inc()
		return
	}
	g.next.OnEnd(s)
}

func (g *gate) Shutdown(ctx context.Context) error   { return g.next.Shutdown(ctx) }
func (g *gate) ForceFlush(ctx context.Context) error { return g.next.ForceFlush(ctx) }

// countingExporter counts what the exporter took and what it failed to,
// and logs failures (at most once a minute: a collector that is down fails
// every batch).
type countingExporter struct {
	next             sdktrace.SpanExporter
	pending          atomic.Int64 // spans the gate let through, not yet exported
	exported, failed prometheus.Counter
	log              *slog.Logger

	mu        sync.Mutex
	loggedAt  time.Time
	notLogged int
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.next.ExportSpans(ctx, spans)
	e.pending.Add(-int64(len(spans)))
	if err == nil {
		e.exported.Add(float64(len(spans)))
		return nil
	}
	e.failed.Add(float64(len(spans)))
	e.mu.Lock()
	now := time.Now()
	logIt := now.Sub(e.loggedAt) >= time.Minute
	n := e.notLogged
	if logIt {
		e.loggedAt, e.notLogged = now, 0
	} else {
		e.notLogged++
	}
	e.mu.Unlock()
	if logIt {
		e.log.Warn("tracing: the collector did not take spans; they are dropped (kck_trace_spans_dropped_total)", "spans", len(spans), "err", err, "failures_not_logged_since_last", n)
	}
	// Counted and logged: returned, the batch processor would report it
	// again through OpenTelemetry's global error handler (the standard
	// logger).
	return nil
}

func (e *countingExporter) Shutdown(ctx context.Context) error {
	if err := e.next.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: exporter: %w", err)
	}
	return nil
}
