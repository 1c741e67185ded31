package tracing

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config is how a gateway exports traces. Tracing is off unless an OTLP
// endpoint is given, by Endpoint or by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// or OTEL_EXPORTER_OTLP_ENDPOINT; a field that is set wins over the
// variables. The variables are OpenTelemetry's own (see
// https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
//
//	OTEL_SDK_DISABLED=true             no traces, whatever else says
//	OTEL_TRACES_EXPORTER               otlp (the default) or none
//	OTEL_EXPORTER_OTLP_ENDPOINT        the collector's base URL (http/protobuf adds /v1/traces)
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT the traces URL, used as it is
//	OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL http/protobuf (the default) or grpc
//	OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
//	  _CLIENT_CERTIFICATE, _CLIENT_KEY   read by the exporter; checked here
//	OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG  parentbased_traceidratio and the others
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES  the resource (service.name defaults to ServiceName)
//	OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
//	  OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT  the batch processor
//
// A setting that cannot work is an error naming it (Check), so that a
// gateway does not start exporting nowhere.
type Config struct {
	// Endpoint is the collector's base URL, http(s)://host:port
	// (--otel-endpoint), read as OTEL_EXPORTER_OTLP_ENDPOINT is: with
	// http/protobuf, /v1/traces is added to its path.
	Endpoint string
	// Protocol is "http/protobuf" or "grpc" (--otel-protocol).
	Protocol string
	// SampleRatio is the fraction of new traces recorded, from 0 to 1
	// (--trace-sample-ratio); a request that comes with a traceparent
	// follows its caller's decision (parent-based). Negative: the
	// OTEL_TRACES_SAMPLER variables decide, else every trace is recorded
	// (OpenTelemetry's default, parentbased_always_on); app.Defaults sets
	// -1. Zero records no new trace.
	SampleRatio float64
	// ServiceName is service.name unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES say. Default "kck".
	ServiceName string
	// Getenv reads the variables; nil: os.Getenv (tests give their own).
	Getenv func(string) string
}

// settings is a Config resolved against the variables.
type settings struct {
	on       bool
	protocol string
	url      string // the exporter's URL
	sampler  sdktrace.Sampler
	// ratio is the root sampler's fraction (1: always, 0: never): it
	// decides for a span without a parent, and for every span unless
	// parentBased (which follows a parent's decision).
	ratio       float64
	parentBased bool
	// The batch processor's bounds.
	queue, batch         int
	delay, exportTimeout time.Duration
}

// Protocols.
const (
	HTTPProtobuf = "http/protobuf"
	GRPC         = "grpc"
)

// Check reports the first setting, a field or a variable, that tracing
// cannot work with, naming it; nil when tracing is off or can start.
func (c Config) Check() error {
	_, err := c.resolve()
	return err
}

// On reports whether c turns tracing on (an endpoint is given, and no
// variable turns it off). A Config that Check refuses is not on.
func (c Config) On() bool {
	s, err := c.resolve()
	return err == nil && s.on
}

func (c Config) resolve() (settings, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	var s settings
	if v := env("OTEL_SDK_DISABLED"); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("tracing: OTEL_SDK_DISABLED=%q: want true or false", v)
		}
		if off {
			return s, nil
		}
	}
	switch v := env("OTEL_TRACES_EXPORTER"); v {
	case "", "otlp":
	case "none":
		return s, nil
	default:
		return s, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: kck exports traces over OTLP only: otlp, or none for no traces", v)
	}

	// Which URL, and how it is read.
	endpoint, from, base := c.Endpoint, "--otel-endpoint (KCK_OTEL_ENDPOINT)", true
	if endpoint == "" {
		if v := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
			endpoint, from, base = v, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false
		} else if v := env("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
			endpoint, from = v, "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
	}

	s.protocol = c.Protocol
	from2 := "--otel-protocol (KCK_OTEL_PROTOCOL)"
	if s.protocol == "" {
		s.protocol, from2 = firstEnv(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch s.protocol {
	case "":
		s.protocol = HTTPProtobuf
	case HTTPProtobuf, GRPC:
	case "http/json":
		return s, fmt.Errorf("tracing: %s %q: Go's OTLP exporter speaks http/protobuf or grpc", from2, s.protocol)
	default:
		return s, fmt.Errorf("tracing: %s %q: want http/protobuf or grpc", from2, s.protocol)
	}

	var err error
	if s.ratio, s.parentBased, err = c.sampler(env); err != nil {
		return s, err
	}
	switch root := sdktrace.TraceIDRatioBased(s.ratio); {
	case s.parentBased:
		s.sampler = sdktrace.ParentBased(root)
	case s.ratio >= 1:
		s.sampler = sdktrace.AlwaysSample()
	case s.ratio <= 0:
		s.sampler = sdktrace.NeverSample()
	default:
		s.sampler = root
	}
	for _, b := range []struct {
		name string
		p    *int
		def  int
	}{
		{"OTEL_BSP_MAX_QUEUE_SIZE", &s.queue, 2048},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &s.batch, 512},
	} {
		if *b.p, err = positive(env, b.name, b.def); err != nil {
			return s, err
		}
	}
	if s.batch > s.queue {
		return s, fmt.Errorf("tracing: OTEL_BSP_MAX_EXPORT_BATCH_SIZE %d is above OTEL_BSP_MAX_QUEUE_SIZE %d", s.batch, s.queue)
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"OTEL_BSP_SCHEDULE_DELAY", &s.delay, 5 * time.Second},
		{"OTEL_BSP_EXPORT_TIMEOUT", &s.exportTimeout, 30 * time.Second},
	} {
		ms, err := positive(env, d.name, int(d.def/time.Millisecond))
		if err != nil {
			return s, err
		}
		*d.p = time.Duration(ms) * time.Millisecond
	}
	if err := checkExporterEnv(env); err != nil {
		return s, err
	}
	if endpoint == "" {
		return s, nil // nothing to export to: off
	}
	if s.url, err = exportURL(endpoint, s.protocol, base); err != nil {
		return s, fmt.Errorf("tracing: %s %q: %w", from, endpoint, err)
	}
	s.on = true
	return s, nil
}

func firstEnv(env func(string) string, names ...string) (value, name string) {
	for _, n := range names {
		if v := env(n); v != "" {
			return v, n
		}
	}
	return "", names[len(names)-1]
}

// exportURL is the exporter's URL for endpoint: for http/protobuf a base
// URL (base) gets /v1/traces; gRPC takes host and port, and its scheme
// says whether to use TLS.
func exportURL(endpoint, protocol string, base bool) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want http://host:port or https://host:port")
	case u.Hostname() == "":
		return "", errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", errors.New("want a URL without user, query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", errors.New("bad port")
		}
	}
	if protocol == GRPC {
		if strings.Trim(u.Path, "/") != "" {
			return "", errors.New("a gRPC endpoint is host and port only, no path")
		}
		u.Path = ""
		return u.String(), nil
	}
	if base {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

// sampler is the head sampler, SampleRatio's when set, else the
// variables': the fraction of traces its root sampler records (1: all, 0:
// none), and whether a span with a parent follows its parent's decision
// instead.
func (c Config) sampler(env func(string) string) (ratio float64, parentBased bool, err error) {
	if c.SampleRatio >= 0 {
		if c.SampleRatio > 1 {
			return 0, false, fmt.Errorf("tracing: --trace-sample-ratio (KCK_TRACE_SAMPLE_RATIO) %v: want a fraction from 0 to 1", c.SampleRatio)
		}
		return c.SampleRatio, true, nil
	}
	name, arg := env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG")
	switch name {
	case "", "parentbased_always_on":
		return 1, true, nil
	case "parentbased_always_off":
		return 0, true, nil
	case "always_on":
		return 1, false, nil
	case "always_off":
		return 0, false, nil
	case "traceidratio", "parentbased_traceidratio":
		r := 1.0
		if arg != "" {
			r, err = strconv.ParseFloat(arg, 64)
			if err != nil || r < 0 || r > 1 {
				return 0, false, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG=%q: want a fraction from 0 to 1", arg)
			}
		}
		return r, name == "parentbased_traceidratio", nil
	}
	return 0, false, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER=%q: want parentbased_traceidratio, traceidratio, parentbased_always_on, parentbased_always_off, always_on or always_off", name)
}

func positive(env func(string) string, name string, def int) (int, error) {
	v := env(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("tracing: %s=%q: want a positive integer", name, v)
	}
	return n, nil
}

// checkExporterEnv checks the variables the exporter reads itself, which it
// would otherwise ignore with a line in the log when it cannot use them.
func checkExporterEnv(env func(string) string) error {
	for _, sig := range []string{"OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"} {
		if n := sig + "TIMEOUT"; env(n) != "" {
			if ms, err := strconv.Atoi(env(n)); err != nil || ms <= 0 {
				return fmt.Errorf("tracing: %s=%q: want milliseconds, a positive integer", n, env(n))
			}
		}
		if n := sig + "COMPRESSION"; env(n) != "" && env(n) != "gzip" && env(n) != "none" {
			return fmt.Errorf("tracing: %s=%q: want gzip or none", n, env(n))
		}
		if n := sig + "HEADERS"; env(n) != "" {
			for kv := range strings.SplitSeq(env(n), ",") {
				k, v, ok := strings.Cut(kv, "=")
				if strings.TrimSpace(kv) == "" {
					continue
				}
				if _, err := url.QueryUnescape(v); !ok || strings.TrimSpace(k) == "" || err != nil {
					return fmt.Errorf("tracing: %s: want key=value pairs, comma-separated, values URL-encoded", n)
				}
			}
		}
		for _, f := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			n := sig + f
			if p := env(n); p != "" {
				if _, err := os.ReadFile(p); err != nil {
					return fmt.Errorf("tracing: %s: %w", n, err)
				}
			}
		}
		cert, key := env(sig+"CLIENT_CERTIFICATE"), env(sig+"CLIENT_KEY")
		if (cert == "") != (key == "") {
			return fmt.Errorf("tracing: %sCLIENT_CERTIFICATE and %sCLIENT_KEY go together", sig, sig)
		}
		if cert != "" {
			if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
				return fmt.Errorf("tracing: %sCLIENT_CERTIFICATE, %sCLIENT_KEY: %w", sig, sig, err)
			}
		}
	}
	return nil
}
