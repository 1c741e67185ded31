package scheduler

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFailLogThrottlesARepeatedFailure(t *testing.T) {
	var buf bytes.Buffer
	l := newFailLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	lines := func() []string {
		out := strings.Split(strings.TrimSpace(buf.String()), "\n")
		buf.Reset()
		if len(out) == 1 && out[0] == "" {
			return nil
		}
		return out
	}
	down := errors.New("store not connected yet")
	for range 60 { // every second for a minute
		l.failed("queue/drain", now, down)
		now = now.Add(time.Second)
	}
	got := lines()
	require.Len(t, got, 1, "one line for a minute of the same failure: %q", got)
	require.Contains(t, got[0], `msg="job failed" job=queue/drain`)

	l.failed("queue/drain", now, down)
	got = lines()
	require.Len(t, got, 1, "a reminder after a minute")
	require.Contains(t, got[0], `msg="job still failing"`)
	require.Contains(t, got[0], "runs_failed=61 runs_not_logged=59 failing_for=1m0s")

	now = now.Add(time.Second)
	l.failed("queue/drain", now, errors.New("timeout"))
	require.Len(t, lines(), 1, "a new error is logged at once")
	l.failed("refresh/p", now, down)
	require.Len(t, lines(), 1, "jobs are throttled apart")

	l.succeeded("queue/drain")
	got = lines()
	require.Len(t, got, 1)
	require.Contains(t, got[0], `msg="job recovered" job=queue/drain runs_failed=62`)
	l.succeeded("queue/drain")
	require.Empty(t, lines(), "recovery is logged once")
	l.failed("queue/drain", now, down)
	got = lines()
	require.Len(t, got, 1)
	require.Contains(t, got[0], `msg="job failed"`, "a new streak starts afresh")
}
