package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSlot(t *testing.T) {
	t.Parallel()
	hourly, err := check(primers.Cron("0 * * * *"), time.UTC, at("2026-11-22T12:00:00Z"))
	require.NoError(t, err)
	tenSec, err := check(primers.Cron("*/10 * * * * *"), time.UTC, at("2026-11-22T12:00:00Z"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		s      schedule
		now    string
		slot   string
		period time.Duration
	}{
		{"interval, on time", every(time.Second), "2026-11-22T12:00:05Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval, ticker early", every(time.Second), "2026-11-22T12:00:04.6Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval, ticker late", every(time.Second), "2026-11-22T12:00:05.4Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval of 10 s", every(10 * time.Second), "2026-11-22T12:00:24Z", "2026-11-22T12:00:20Z", 10 * time.Second},
		{"hourly, late", hourly, "2026-11-22T12:00:30Z", "2026-11-22T12:00:00Z", time.Hour},
		{"hourly, early", hourly, "2026-11-22T11:59:59.5Z", "2026-11-22T12:00:00Z", time.Hour},
		{"hourly, very late", hourly, "2026-11-22T12:29:00Z", "2026-11-22T12:00:00Z", time.Hour},
		{"hourly, closer to the next", hourly, "2026-11-22T12:31:00Z", "2026-11-22T13:00:00Z", time.Hour},
		{"every 10 s with seconds", tenSec, "2026-11-22T12:00:14Z", "2026-11-22T12:00:10Z", 10 * time.Second},
		{"every 10 s, early", tenSec, "2026-11-22T12:00:09.7Z", "2026-11-22T12:00:10Z", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slot, period := tc.s.slot(at(tc.now))
			require.Equal(t, at(tc.slot), slot.UTC())
			require.Equal(t, tc.period, period)
		})
	}
}

// every is the checked schedule of every d.
func every(d time.Duration) schedule { return schedule{Schedule: primers.Every(d)} }

// check refuses what Validate refuses, and parses cron expressions in the
// scheduler's location.
func TestScheduleCheck(t *testing.T) {
	t.Parallel()
	now := at("2026-11-22T12:00:00Z")
	for _, s := range []primers.Schedule{{}, primers.Every(0), primers.Every(-time.Second), primers.Every(time.Microsecond), primers.Cron("bad"), primers.Cron("* * *"), primers.Cron("61 * * * *"), primers.Cron("TZ=")} {
		_, err := check(s, time.UTC, now)
		require.Error(t, err, s.String())
	}
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	for _, s := range []primers.Schedule{primers.Every(time.Millisecond), primers.Cron("*/5 * * * *"), primers.Cron("0 */5 * * * *"), primers.Cron("@hourly"), primers.Cron("@every 90s"), primers.Cron("CRON_TZ=Europe/Paris 0 3 * * *")} {
		c, err := check(s, paris, now)
		require.NoError(t, err, s.String())
		require.Equal(t, s, c.Schedule)
		require.Equal(t, s.Cron != "", c.cron != nil, "a cron expression is parsed: %s", s)
	}
}

func TestStartAlignsIntervals(t *testing.T) {
	t.Parallel()
	require.Len(t, every(time.Second).startOptions(at("2026-11-22T12:00:00.3Z")), 1)
	require.Empty(t, schedule{Schedule: primers.Cron("@hourly")}.startOptions(at("2026-11-22T12:00:00.3Z")))
}
