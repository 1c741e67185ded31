package cassandra

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func pending(rows ...changeRow) []*pubCall {
	out := make([]*pubCall, len(rows))
	for i, r := range rows {
		out[i] = &pubCall{row: r}
	}
	return out
}

// A batch holds changes of one feed partition only, at most maxPublishBatch
// of them and about maxPublishBytes; the rest stay pending, in order.
func TestPublisherTakesOnePartitionWithinLimits(t *testing.T) {
	t.Parallel()
	var rows []changeRow
	for i := range maxPublishBatch + 10 {
		rows = append(rows, changeRow{bucket: 7, key: "k", version: int64(i)})
	}
	rows = append(rows[:3], append([]changeRow{{bucket: 8, key: "other"}}, rows[3:]...)...)
	p := &publisher{pending: pending(rows...)}

	batch := p.take()
	require.Len(t, batch, maxPublishBatch)
	for _, c := range batch {
		require.Equal(t, int64(7), c.row.bucket)
	}
	require.Len(t, p.pending, 11)
	require.Equal(t, int64(8), p.pending[0].row.bucket, "the other partition's change is next")
	require.Equal(t, int64(maxPublishBatch), p.pending[1].row.version, "the rest in order")

	require.Len(t, p.take(), 1, "a partition of its own")
	require.Len(t, p.take(), 10)
	require.Empty(t, p.pending)

	long := strings.Repeat("x", maxPublishBytes/3)
	p.pending = pending(changeRow{key: long}, changeRow{key: long}, changeRow{key: long}, changeRow{key: long})
	require.Len(t, p.take(), 2, "bounded by bytes")
	require.Len(t, p.pending, 2)

	p.pending = pending(changeRow{key: strings.Repeat("x", 2*maxPublishBytes)})
	require.Len(t, p.take(), 1, "a change larger than the bound goes alone")
}
