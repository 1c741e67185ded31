package bench

import (
	"net/http"
	"testing"
	"time"
)

// hitMode is one gateway of an interleaved hit benchmark.
type hitMode struct {
	name string
	r    *rig
	// tokens, when set, are the bearer tokens of the rig's requests, one
	// per body.
	tokens  []string
	reqs    []*http.Request
	ws      []*discard
	ns, cpu time.Duration
}

// interleaveHits serves the modes' hits in turns of turn requests each, who
// goes first rotating, so that load from outside falls on every mode alike;
// each turn is timed on the wall clock and on its thread's CPU clock, and
// every answer's length is checked. warm first serves every body once per
// mode (a token's entries). It reports, for each mode after the first,
// <name>-ns/req and its ratios to the first mode's throughput, wall (-x)
// and CPU (-cpu-x), and the first mode's <name>-ns/req.
func interleaveHits(b *testing.B, turn int, warm bool, modes []*hitMode) {
	for _, m := range modes {
		m.reqs, m.ws = make([]*http.Request, turn), make([]*discard, turn)
	}
	build := func(m *hitMode, i0 int) {
		for k := range m.reqs {
			j := (i0 + k) % len(m.r.bodies)
			m.reqs[k] = post(m.r.bodies[j])
			if m.tokens != nil {
				m.reqs[k].Header["Authorization"] = []string{"Bearer " + m.tokens[j]}
			}
			m.ws[k] = &discard{h: http.Header{}}
		}
	}
	if warm {
		for _, m := range modes {
			for i0 := 0; i0 < len(m.r.bodies); i0 += turn {
				build(m, i0)
				serveHits(m.r.h, m.ws, m.reqs)
			}
		}
	}
	b.ResetTimer()
	for i0, t := 0, 0; i0 < b.N; i0, t = i0+turn, t+1 {
		n := min(turn, b.N-i0)
		for k := range modes {
			m := modes[(t+k)%len(modes)] // who goes first rotates
			b.StopTimer()
			build(m, i0)
			b.StartTimer()
			t0 := time.Now()
			m.cpu += serveHits(m.r.h, m.ws[:n], m.reqs)
			m.ns += time.Since(t0)
			b.StopTimer()
			for k, w := range m.ws[:n] {
				if j := (i0 + k) % len(m.r.bodies); w.n != len(m.r.want[j]) {
					b.Fatalf("author %d: wrote %d bytes, want %d", j+1, w.n, len(m.r.want[j]))
				}
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	for _, m := range modes[1:] {
		b.ReportMetric(float64(m.ns)/n, m.name+"-ns/req")
		b.ReportMetric(float64(modes[0].ns)/float64(m.ns), m.name+"-x")
		b.ReportMetric(float64(modes[0].cpu)/float64(m.cpu), m.name+"-cpu-x")
	}
	b.ReportMetric(float64(modes[0].ns)/n, modes[0].name+"-ns/req")
}
