package admin

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The history keeps the last historySize samples, oldest first.
func TestHistoryRing(t *testing.T) {
	t.Parallel()
	var h history
	t0 := time.Unix(0, 0)
	for i := range historySize + 7 {
		h.add(Sample{At: t0.Add(time.Duration(i) * time.Second), Hits: float64(i)})
	}
	all := h.all()
	require.Len(t, all, historySize)
	require.Equal(t, 7.0, all[0].Hits)
	require.Equal(t, float64(historySize+6), all[len(all)-1].Hits)
	for i := 1; i < len(all); i++ {
		require.True(t, all[i].At.After(all[i-1].At))
	}
}
