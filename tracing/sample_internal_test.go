package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Sample decides before a span exists what the SDK's sampler decides when
// it is made: the gateway starts a span only for a sampled request, and
// that span must be recorded, with the trace id Sample chose.
func TestSampleAgreesWithTheSDK(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{}, // parentbased_always_on
		{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
		{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
		{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.3"},
		{"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
		{"OTEL_TRACES_SAMPLER": "always_on"},
		{"OTEL_TRACES_SAMPLER": "always_off"},
	} {
		s, err := Config{Endpoint: "http://c:4318", SampleRatio: -1, Getenv: func(k string) string { return env[k] }}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s.sampler), sdktrace.WithIDGenerator(ids{}))
		p := newProvider(tp, s)
		tr := p.Tracer("test")
		sampled := 0
		for i := range 20000 {
			var parent trace.SpanContext
			if i%2 == 1 { // half with a remote parent, sampled or not
				parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: newTraceID(), SpanID: newSpanID(),
					TraceFlags: trace.TraceFlags(i / 2 % 2), Remote: true})
			}
			tid, ok := p.Sample(parent)
			ctx := context.Background()
			if parent.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
			} else {
				// The rule on any trace id, as the SDK's sampler applies it.
				other := newTraceID()
				sdk := s.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: other}).Decision == sdktrace.RecordAndSample
				if p.sampled(other) != sdk {
					t.Fatalf("%v: trace %v: the rule says %v, the SDK %v", env, other, p.sampled(other), sdk)
				}
				if !ok {
					continue // the gateway makes no span then
				}
				ctx = WithTraceID(ctx, tid)
			}
			_, span := tr.Start(ctx, "x")
			if span.IsRecording() != ok {
				t.Fatalf("%v: Sample says %v, the SDK %v (parent %v)", env, ok, span.IsRecording(), parent)
			}
			if ok && span.SpanContext().TraceID() != tid {
				t.Fatalf("%v: the span's trace is not the one Sample chose", env)
			}
			if ok {
				sampled++
			}
			span.End()
		}
		t.Logf("%v: %d of 20000 sampled", env, sampled)
	}
}
