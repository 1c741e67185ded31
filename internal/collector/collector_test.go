package collector_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/collector"
)

func TestRegisterShares(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "kck_test_total", Help: "A test counter."}
	a, err := collector.Register(reg, prometheus.NewCounter(opts))
	require.NoError(t, err)
	b, err := collector.Register(reg, prometheus.NewCounter(opts))
	require.NoError(t, err)
	require.Same(t, a, b, "the second instance counts into the first's series")

	// Another kind under the name is refused.
	_, err = collector.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "kck_test_total", Help: "A test counter."}))
	require.Error(t, err)
}
