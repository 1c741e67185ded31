package primers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

func TestScheduleValidate(t *testing.T) {
	t.Parallel()
	for _, s := range []primers.Schedule{{}, primers.Every(0), primers.Every(-time.Second), primers.Every(time.Microsecond), primers.Cron("bad"), primers.Cron("* * *"), primers.Cron("61 * * * *"), primers.Cron("TZ="), {Every: time.Minute, Cron: "@hourly"}} {
		require.Error(t, s.Validate(), s.String())
	}
	for _, s := range []primers.Schedule{primers.Every(time.Millisecond), primers.Cron("*/5 * * * *"), primers.Cron("0 */5 * * * *"), primers.Cron("@hourly"), primers.Cron("@every 90s"), primers.Cron("CRON_TZ=Europe/Paris 0 3 * * *")} {
		require.NoError(t, s.Validate(), s.String())
	}
	require.Equal(t, "every 1s", primers.Every(time.Second).String())
	require.Equal(t, "cron @hourly", primers.Cron(" @hourly ").String())
	require.Equal(t, "never", primers.Schedule{}.String())
	require.True(t, primers.Cron("CRON_TZ=UTC 0 */5 * * * *").HasSeconds())
	require.False(t, primers.Cron("*/5 * * * *").HasSeconds())
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
		s, err := primers.ParseSchedule(in)
		require.NoError(t, err, in)
		require.Equal(t, want, s.String(), in)
	}
	for _, in := range []string{"", "soon", "every", "0s", "-1m", "cron", "cron bad", "cron 61 * * * *", "@nope", "cron TZ=", "cron CRON_TZ=Europe/Paris"} {
		_, err := primers.ParseSchedule(in)
		require.Error(t, err, in)
	}
}

// ParseSchedule reads declarations (kck:refresh, kck:domain): it never
// panics, and what it accepts prints as a schedule that reads back the same.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"5m", "every 90s", "cron */5 * * * *", "cron 0 */5 * * * *", "@hourly", "@every 1h", "cron CRON_TZ=Europe/Paris 0 3 * * *", "", "0s", "cron 61 * * * *", "every -1s", "cron @", "1e400h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := primers.ParseSchedule(in)
		if err != nil {
			return
		}
		if s.IsZero() {
			t.Fatalf("%q: accepted a schedule that never runs", in)
		}
		again, err := primers.ParseSchedule(s.String()) // "every 5m0s", "cron EXPR"
		if err != nil || again.String() != s.String() {
			t.Fatalf("%q: printed as %q, read back as %q (%v)", in, s.String(), again.String(), err)
		}
	})
}
