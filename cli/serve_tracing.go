package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/kck-go/kck/tracing"
)

// tracingFlags add the OpenTelemetry flags. Each, unset, leaves the
// standard OTEL_* variable its place (tracing.Config). A bad
// KCK_TRACE_SAMPLE_RATIO is returned, to fail the start naming it.
func tracingFlags(f *flags, c *tracing.Config) error {
	f.str(&c.Endpoint, "otel-endpoint", "KCK_OTEL_ENDPOINT", "", "send OpenTelemetry traces over OTLP to this collector (http://host:4318 with http/protobuf, which adds /v1/traces; http://host:4317 with grpc); empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing")
	f.str(&c.Protocol, "otel-protocol", "KCK_OTEL_PROTOCOL", "", "OTLP protocol: http/protobuf or grpc; empty: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf")
	var envErr error
	if v := os.Getenv("KCK_TRACE_SAMPLE_RATIO"); v != "" {
		if err := (ratioFlag{&c.SampleRatio}).Set(v); err != nil {
			envErr = fmt.Errorf("KCK_TRACE_SAMPLE_RATIO=%q: %w", v, err)
		}
	}
	f.value(ratioFlag{&c.SampleRatio}, "trace-sample-ratio", "KCK_TRACE_SAMPLE_RATIO", "fraction of new traces recorded, 0 to 1 (0.01: one request in a hundred); a request with a traceparent follows its caller's choice; empty: OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, else every trace")
	return envErr
}

// ratioFlag is a fraction from 0 to 1; negative reads as unset.
type ratioFlag struct{ p *float64 }

func (r ratioFlag) String() string {
	if r.p == nil || *r.p < 0 {
		return ""
	}
	return strconv.FormatFloat(*r.p, 'g', -1, 64)
}

func (r ratioFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return errors.New("want a fraction from 0 to 1")
	}
	*r.p = v
	return nil
}
