// Package otlptest is an OTLP trace receiver for tests, in process: an HTTP
// server decoding the protobuf exports (POST /v1/traces, as a collector's
// OTLP/HTTP receiver takes them) and a gRPC server of the collector's
// TraceService, both keeping the spans for the test to look at.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is a received span, its IDs in hex and its attributes as text.
type Span struct {
	TraceID, SpanID, Parent string
	Name                    string
	Kind                    tracepb.Span_SpanKind
	Attrs                   map[string]string
	Links                   []Link
	Events                  []string
	Failed                  bool // status error
	Service                 string
	Start, End              time.Time
}

// Link is a span's link to another.
type Link struct{ TraceID, SpanID string }

// Receiver keeps the spans exported to it.
type Receiver struct {
	t        testing.TB
	http     *httptest.Server
	grpcAddr string

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced when spans arrive
	// failing: answer exports with 503 (a collector that is down).
	failing  atomic.Bool
	requests atomic.Int64
}

// Start starts both servers on loopback; they stop at the test's end.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{t: t, changed: make(chan struct{})}
	r.http = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(r.http.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(gs, grpcReceiver{r: r})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	r.grpcAddr = ln.Addr().String()
	return r
}

// URL is the HTTP receiver's base URL, for OTEL_EXPORTER_OTLP_ENDPOINT or
// --otel-endpoint with http/protobuf.
func (r *Receiver) URL() string { return r.http.URL }

// GRPCURL is the gRPC receiver's, for --otel-protocol grpc.
func (r *Receiver) GRPCURL() string { return "http://" + r.grpcAddr }

// Fail makes the HTTP receiver refuse exports (503) while on is true.
func (r *Receiver) Fail(on bool) { r.failing.Store(on) }

// Requests counts the export requests received.
func (r *Receiver) Requests() int64 { return r.requests.Load() }

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	if r.failing.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &ex); err != nil {
		r.t.Errorf("otlptest: an export that is not an ExportTraceServiceRequest: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&ex)
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

type grpcReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcReceiver) Export(_ context.Context, ex *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	g.r.requests.Add(1)
	g.r.add(ex)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) add(ex *coltrace.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range ex.ResourceSpans {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := Span{
					TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					Parent: hex.EncodeToString(s.ParentSpanId), Name: s.Name, Kind: s.Kind,
					Attrs: attrs(s.Attributes), Service: service,
					Failed: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Start:  time.Unix(0, int64(s.StartTimeUnixNano)), End: time.Unix(0, int64(s.EndTimeUnixNano)),
				}
				for _, l := range s.Links {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.TraceId), SpanID: hex.EncodeToString(l.SpanId)})
				}
				for _, e := range s.Events {
					sp.Events = append(sp.Events, e.Name)
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func attrs(kvs []*common.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *common.AnyValue_StringValue:
			m[kv.Key] = x.StringValue
		case *common.AnyValue_IntValue:
			m[kv.Key] = fmt.Sprint(x.IntValue)
		case *common.AnyValue_BoolValue:
			m[kv.Key] = fmt.Sprint(x.BoolValue)
		case *common.AnyValue_DoubleValue:
			m[kv.Key] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.Key] = v.String()
		}
	}
	return m
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Wait returns the spans received once ok says they are what the test
// waits for, failing the test after timeout (with what arrived). It waits
// on arrivals, never on a sleep.
func (r *Receiver) Wait(timeout time.Duration, ok func([]Span) bool) []Span {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := slices.Clone(r.spans), r.changed
		r.mu.Unlock()
		if ok(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			r.t.Fatalf("otlptest: the spans waited for did not arrive within %v; received:\n%s", timeout, Dump(spans))
			return nil
		}
	}
}

// Trace returns the spans of one trace.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Find returns the first span named name (by prefix when name ends in
// "*") whose attributes include want's, and whether there is one.
func Find(spans []Span, name string, want map[string]string) (Span, bool) {
	for _, s := range spans {
		if !nameIs(s.Name, name) {
			continue
		}
		match := true
		for k, v := range want {
			if s.Attrs[k] != v {
				match = false
				break
			}
		}
		if match {
			return s, true
		}
	}
	return Span{}, false
}

func nameIs(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

// Path reports whether spans hold a chain of spans named names (prefixes
// when they end in "*"), each the parent of the next, from the first.
func Path(spans []Span, names ...string) bool {
	var walk func(parent string, names []string) bool
	walk = func(parent string, names []string) bool {
		if len(names) == 0 {
			return true
		}
		for _, s := range spans {
			if s.Parent == parent && nameIs(s.Name, names[0]) && walk(s.SpanID, names[1:]) {
				return true
			}
		}
		return false
	}
	for _, s := range spans {
		if nameIs(s.Name, names[0]) && walk(s.SpanID, names[1:]) {
			return true
		}
	}
	return false
}

// Dump draws spans as trees, one per trace, for failure messages.
func Dump(spans []Span) string {
	var b strings.Builder
	byParent := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		byParent[s.Parent] = append(byParent[s.Parent], s)
		ids[s.SpanID] = true
	}
	var draw func(s Span, depth int)
	draw = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s trace=%s span=%s", strings.Repeat("  ", depth), s.Name, s.TraceID[:8], s.SpanID[:8])
		keys := make([]string, 0, len(s.Attrs))
		for k := range s.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if strings.HasPrefix(k, "kck.") || k == "http.route" || k == "db.system.name" {
				fmt.Fprintf(&b, " %s=%s", k, s.Attrs[k])
			}
		}
		for _, l := range s.Links {
			fmt.Fprintf(&b, " link=%s/%s", l.TraceID[:8], l.SpanID[:8])
		}
		b.WriteByte('\n')
		for _, c := range byParent[s.SpanID] {
			draw(c, depth+1)
		}
	}
	for _, s := range spans {
		if s.Parent == "" || !ids[s.Parent] {
			draw(s, 0)
		}
	}
	return b.String()
}
