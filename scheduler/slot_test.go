package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	hourly, err := Cron("0 * * * *").check(time.UTC, at("2026-11-22T12:00:00Z"))
	require.NoError(t, err)
	tenSec, err := Cron("*/10 * * * * *").check(time.UTC, at("2026-11-22T12:00:00Z"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		s      Schedule
		now    string
		slot   string
		period time.Duration
	}{
		{"interval, on time", Every(time.Second), "2026-11-22T12:00:05Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval, ticker early", Every(time.Second), "2026-11-22T12:00:04.6Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval, ticker late", Every(time.Second), "2026-11-22T12:00:05.4Z", "2026-11-22T12:00:05Z", time.Second},
		{"interval of 10 s", Every(10 * time.Second), "2026-11-22T12:00:24Z", "2026-11-22T12:00:20Z", 10 * time.Second},
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

func TestScheduleCheck(t *testing.T) {
	t.Parallel()
	now := at("2026-11-22T12:00:00Z")
	for _, s := range []Schedule{{}, Every(0), Every(-time.Second), Every(time.Microsecond), Cron("bad"), Cron("* * *"), Cron("61 * * * *")} {
		_, err := s.check(time.UTC, now)
		require.Error(t, err, s.String())
	}
	for _, s := range []Schedule{Every(time.Millisecond), Cron("*/5 * * * *"), Cron("0 */5 * * * *"), Cron("@hourly"), Cron("@every 90s"), Cron("CRON_TZ=Europe/Paris 0 3 * * *")} {
		_, err := s.check(time.UTC, now)
		require.NoError(t, err, s.String())
	}
	require.Equal(t, "every 1s", Every(time.Second).String())
	require.Equal(t, "cron @hourly", Cron(" @hourly ").String())
	require.Equal(t, "never", Schedule{}.String())
}

func TestStartAlignsIntervals(t *testing.T) {
	t.Parallel()
	require.Len(t, Every(time.Second).startOptions(at("2026-11-22T12:00:00.3Z")), 1)
	require.Empty(t, Cron("@hourly").startOptions(at("2026-11-22T12:00:00.3Z")))
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"5m":                         "every 5m0s",
		" every 90s ":                "every 1m30s",
		"cron */5 * * * *":           "cron */5 * * * *",
		"cron 0 */5 * * * *":         "cron 0 */5 * * * *",
		"@hourly":                    "cron @hourly",
		"cron CRON_TZ=UTC 0 3 * * *": "cron CRON_TZ=UTC 0 3 * * *",
	} {
		s, err := ParseSchedule(in)
		require.NoError(t, err, in)
		require.Equal(t, want, s.String(), in)
	}
	for _, in := range []string{"", "soon", "every", "0s", "-1m", "cron", "cron bad", "cron 61 * * * *", "@nope", "cron TZ=", "cron CRON_TZ=Europe/Paris"} {
		_, err := ParseSchedule(in)
		require.Error(t, err, in)
	}
}
