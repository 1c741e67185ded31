package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/bench/internal/benchdoc"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/internal/pgtest"
)

// TestSmoke runs the benchmark's smoke form (make test's): the new code at
// 1 and 2 gateways on the real services, 3 s of changes to 10 held
// authors and 10 changes to authors nobody reads, no baseline, no today's
// code. Every subscriber must be pushed every change, one connection must
// follow the change log, nothing nobody holds may be computed, and the
// report must have its tables. Figures are not judged.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	repo, err := repoRoot()
	require.NoError(t, err)
	c := config{
		repo: repo, counts: []int{1, 2},
		pgURL: pgtest.URL(t), cassHosts: strings.Join(cassandratest.Hosts(t), ","), busURL: natstest.URL(t),
		rate: 20, dur: 3 * time.Second, authors: 10, unheld: 10, drain: time.Minute, smoke: true,
		log: testLog{t},
	}
	require.NoError(t, c.validate())
	rep, err := run(context.Background(), c)
	require.NoError(t, err)
	require.NoError(t, rep.smokeErrors(c))
	require.Len(t, rep.runs, 2)
	for _, r := range rep.runs {
		f := r.figures()
		assert.Equal(t, 60.0, f.changes, "%d gateway(s)", r.n)
		assert.Positive(t, f.opsTotal, "%d gateway(s): store operations", r.n)
		assert.Positive(t, f.sent, "%d gateway(s): bus messages", r.n)
		assert.Equal(t, r.n*60, r.pushes.want)
	}
	md := rep.markdown(c)
	for _, want := range []string{"Per change, by gateway count", "Commit to subscriber", "nobody reads", "Targets (issue 24)", "| new | 2 | 60 |"} {
		assert.Contains(t, md, want)
	}
	readme := filepath.Join(t.TempDir(), "README.md")
	require.NoError(t, os.WriteFile(readme, []byte("before\n"+beginMarker+"\nold\n"+endMarker+"\nafter\n"), 0o644))
	require.NoError(t, benchdoc.Splice(readme, beginMarker, endMarker, md))
	got, err := os.ReadFile(readme)
	require.NoError(t, err)
	assert.Equal(t, "before\n"+beginMarker+"\n"+md+endMarker+"\nafter\n", string(got))
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP kck_primer_runs_total Primer runs by product.
# TYPE kck_primer_runs_total counter
kck_primer_runs_total{product="title_list"} 12
kck_primer_runs_total{product="top_authors"} 3
kck_lease_waits_total 2
kck_odd{a="x\"y",b="p,q"} 1.5e+02
kck_bus_lag_seconds_bucket{le="0.001"} 2
kck_bus_lag_seconds_bucket{le="0.002"} 6
kck_bus_lag_seconds_bucket{le="+Inf"} 10
`
	s, err := parseMetrics(strings.NewReader(text))
	require.NoError(t, err)
	m := metrics{s, s} // two gateways with the same figures
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kck_primer_runs_total", nil, 30},
		{"kck_primer_runs_total", map[string]string{"product": "top_authors"}, 6},
		{"kck_lease_waits_total", nil, 4},
		{"kck_odd", map[string]string{"a": `x"y`, "b": "p,q"}, 300},
		{"kck_absent_total", nil, 0},
	} {
		assert.Equal(t, tc.want, m.sum(tc.name, tc.labels), "%s %v", tc.name, tc.labels)
	}
	assert.Equal(t, map[string]float64{"title_list": 24, "top_authors": 6}, m.by("kck_primer_runs_total", "product"))

	h := histogramDelta(metrics{}, m, "kck_bus_lag_seconds")
	assert.Equal(t, 20.0, h.total())
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.1, 500 * time.Microsecond},  // rank 2 of 4 in (0, 1 ms]
		{0.4, 1500 * time.Microsecond}, // rank 8: 4 of 8 in (1, 2 ms]
		{0.99, 2 * time.Millisecond},   // in +Inf: the last finite bound
	} {
		got, ok := h.quantile(tc.q)
		assert.True(t, ok)
		assert.Equal(t, tc.want, got, "q %v", tc.q)
	}
	_, ok := histogram{}.quantile(0.5)
	assert.False(t, ok, "no observation, no quantile")

	_, err = parseMetrics(strings.NewReader("kck_x{a=\"1\"}\n"))
	assert.Error(t, err, "a sample without a value")
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		assert.Equal(t, tc.want, quantile(d, tc.q), "q %v", tc.q)
	}
	assert.Zero(t, quantile(nil, 0.5))
}
