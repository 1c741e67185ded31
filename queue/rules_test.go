package queue_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// rows makes n rows r/000..., the i-th first requested at t0+i s with
// counts[i % len(counts)] requests.
func rows(n int, counts ...int64) []queue.Item {
	out := make([]queue.Item, n)
	for i := range out {
		out[i] = queue.Item{
			Key:            fmt.Sprintf("r/%03d", i),
			FirstRequested: t0.Add(time.Duration(i) * time.Second),
			Requests:       counts[i%len(counts)],
		}
	}
	return out
}

func withCount(items []queue.Item, i int, n int64) []queue.Item {
	items[i].Requests = n
	return items
}

func TestSelect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		items []queue.Item
		batch int
		want  []string
	}{
		{"empty", nil, 3, nil},
		{"zero batch", rows(3, 1), 0, nil},
		{
			"small queue: most requested first, ties to the earliest",
			rows(6, 1, 5, 2), 3,
			[]string{"r/001", "r/004", "r/002"},
		},
		{
			"small queue at exactly 100 x batch is still small",
			withCount(rows(200, 1), 150, 2), 2,
			[]string{"r/150", "r/000"},
		},
		{
			"large queue, counts close (max - min < 5): earliest first",
			withCount(rows(201, 1), 150, 5), 2,
			[]string{"r/000", "r/001"},
		},
		{
			"large queue, max - avg <= 3: earliest at or above the average",
			rows(202, 1, 6), 2, // avg 3.5: odd rows (6) are above it
			[]string{"r/001", "r/003"},
		},
		{
			"large queue, max - min = 4 is still close: earliest first",
			withCount(withCount(rows(101, 1), 100, 5), 99, 5), 1,
			[]string{"r/000"},
		},
		{
			"large queue, one hot key (max - avg > 3): earliest first",
			withCount(rows(201, 1), 200, 50), 2,
			[]string{"r/000", "r/001"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := queue.Select(tc.items, tc.batch)
			var keys []string
			for _, it := range got {
				keys = append(keys, it.Key)
			}
			require.Equal(t, tc.want, keys)
		})
	}
}

// Rule 3 fills a batch that the rows at or above the average cannot fill
// with the earliest of the others (KCK would have claimed a short batch).
func TestSelectAboveAverageFill(t *testing.T) {
	t.Parallel()
	// 201 rows (more than 100 x 2): 199 of 2, one of 0, one of 5.
	// avg = 403/201 = 2.005: max - min = 5, max - avg = 2.995 <= 3, and
	// only the row of 5 is at or above the average.
	items := rows(201, 2)
	items[50].Requests = 0
	items[100].Requests = 5
	got := queue.Select(items, 2)
	require.Len(t, got, 2)
	require.Equal(t, []string{"r/100", "r/000"}, []string{got[0].Key, got[1].Key})
}

func TestSelectDoesNotChangeRows(t *testing.T) {
	t.Parallel()
	items := rows(5, 3, 1)
	before := append([]queue.Item(nil), items...)
	got := queue.Select(items, 2)
	got[0].Key = "changed"
	require.ElementsMatch(t, before, items)
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{MaxAttempts: 2}.WithDefaults()
	var it queue.Item
	cfg.Merge(&it, "a/1", t0, "")
	require.Equal(t, queue.Item{Key: "a/1", FirstRequested: t0, LastRequested: t0, Requests: 1}, it)
	require.True(t, cfg.Claimable(&it, t0))

	cfg.Claim(&it, "w1", t0, time.Minute)
	require.True(t, it.Claimed(t0))
	require.False(t, cfg.Claimable(&it, t0.Add(time.Second)))
	require.False(t, cfg.Expire(&it, t0.Add(time.Second)), "the lease still runs")
	require.True(t, cfg.Expire(&it, t0.Add(time.Minute)))
	require.Equal(t, 1, it.Attempts)
	require.False(t, it.Poisoned)
	require.True(t, cfg.Claimable(&it, t0.Add(time.Minute)))

	cfg.Claim(&it, "w2", t0.Add(time.Minute), time.Minute)
	err := cfg.Release(&it, "w1", errors.New("x"), t0)
	require.ErrorIs(t, err, queue.ErrNotClaimed)
	require.NoError(t, cfg.Release(&it, "w2", errors.New("x"), t0.Add(time.Minute)))
	require.True(t, it.Poisoned, "second failure with MaxAttempts 2")
	require.False(t, cfg.Claimable(&it, t0.Add(time.Hour)))
}

// A refresh that fails because its database is down is not the key's
// fault: however long the outage, the key is never poisoned, it is retried
// at least every UnavailableBackoffMax, and once refreshed it starts afresh.
// Its other failures still poison it after MaxAttempts.
func TestReleaseUnavailableNeverPoisons(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{MaxAttempts: 3}.WithDefaults()
	down := fmt.Errorf("title_list.sql: %w", primers.Unavailable("the source database", errors.New("connection refused")))
	var it queue.Item
	cfg.Merge(&it, "a/1", t0, "")
	now := t0
	for i := range 20 {
		cfg.Claim(&it, "w", now, time.Minute)
		require.NoError(t, cfg.Release(&it, "w", down, now))
		require.False(t, it.Poisoned, "failure %d, the database down", i+1)
		require.LessOrEqual(t, it.NotBefore.Sub(now), queue.UnavailableBackoffMax)
		require.Positive(t, it.NotBefore.Sub(now))
		now = it.NotBefore
	}
	require.Equal(t, 20, it.Attempts)
	require.True(t, cfg.Claimable(&it, now))

	// The key's own failures count as before.
	for i := range 3 {
		cfg.Claim(&it, "w", now, time.Minute)
		require.NoError(t, cfg.Release(&it, "w", errors.New("syntax error"), now))
		require.Equal(t, i == 2, it.Poisoned, "own failure %d of MaxAttempts 3", i+1)
		now = it.NotBefore
	}

	// A permanent failure poisons at once, even when unavailable.
	var p queue.Item
	cfg.Merge(&p, "a/2", t0, "")
	cfg.Claim(&p, "w", t0, time.Minute)
	require.NoError(t, cfg.Release(&p, "w", queue.Permanent(down), t0))
	require.True(t, p.Poisoned)
}

func TestDefaultBackoff(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Duration(0), queue.DefaultBackoff(0))
	require.Equal(t, time.Second, queue.DefaultBackoff(1))
	require.Equal(t, 2*time.Second, queue.DefaultBackoff(2))
	require.Equal(t, 256*time.Second, queue.DefaultBackoff(9))
	require.Equal(t, 5*time.Minute, queue.DefaultBackoff(10))
	require.Equal(t, 5*time.Minute, queue.DefaultBackoff(1000))
}

// Stats.Next names what the next claim takes: claimable rows only, in
// Select's order.
func TestStatsNext(t *testing.T) {
	t.Parallel()
	items := rows(5, 1, 7, 3)
	items[1].Worker, items[1].LeaseUntil = "w", t0.Add(time.Hour) // claimed: 7 requests, not next
	items[2].NotBefore = t0.Add(time.Hour)                        // backing off
	items[3].Poisoned = true
	var st queue.Stats
	for i := range items {
		queue.AddToStats(&st, &items[i], t0)
	}
	require.Equal(t, []string{"r/004", "r/000"}, st.Next(20))
	require.Equal(t, []string{"r/004"}, st.Next(1))
	require.Empty(t, queue.Stats{}.Next(20))
	require.Equal(t, 4, st.Depth)
}
