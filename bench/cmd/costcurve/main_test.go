package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The smoke form: two small counts, the second beyond a tiny tier, so that
// reads come from the store too; measure checks every read succeeded.
func TestMeasureSmoke(t *testing.T) {
	small, err := measure(100, 1, 50*time.Millisecond, 1024)
	require.NoError(t, err)
	require.Equal(t, 100, small.Held, "100 products of 1 KB fit in 1 MiB")
	require.Greater(t, small.ReadsPerSec, 0.0)
	require.Greater(t, small.RSS, int64(0))
	require.InDelta(t, 1024, small.Encoded, 64)

	big, err := measure(3000, 1, 50*time.Millisecond, 1024)
	require.NoError(t, err)
	require.Less(t, big.Held, 3000, "3,000 products of 1 KB do not fit in 1 MiB")
	require.Less(t, big.MemoryShare, 1.0, "some reads came from the store")
}
