package primers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Schedule says when periodic work runs: every interval, or on a cron
// expression. It is plain data, written in a product's declaration (or a
// SQL header, see ParseSchedule) and run by the scheduler. The zero
// Schedule never runs.
type Schedule struct {
	// Every runs the work every interval, at multiples of it since the
	// zero time (so every gateway runs it at the same instants: 12:00:00,
	// 12:00:10, ... for 10 s).
	Every time.Duration
	// Cron runs the work on a cron expression: five fields (minute first),
	// or six with seconds first; descriptors such as @hourly and @every 5m;
	// an optional CRON_TZ=Zone prefix, else the scheduler's location.
	Cron string
}

// Every returns the Schedule of every d.
func Every(d time.Duration) Schedule { return Schedule{Every: d} }

// Cron returns the Schedule of a cron expression.
func Cron(expr string) Schedule { return Schedule{Cron: strings.TrimSpace(expr)} }

// IsZero reports whether s never runs.
func (s Schedule) IsZero() bool { return s.Every == 0 && s.Cron == "" }

func (s Schedule) String() string {
	if s.Every != 0 {
		return "every " + s.Every.String()
	}
	if s.Cron != "" {
		return "cron " + s.Cron
	}
	return "never"
}

// HasSeconds reports whether the cron expression has a seconds field (six
// fields, seconds first).
func (s Schedule) HasSeconds() bool {
	f := strings.Fields(s.Cron)
	if len(f) > 0 && (strings.HasPrefix(f[0], "CRON_TZ=") || strings.HasPrefix(f[0], "TZ=")) {
		f = f[1:]
	}
	return len(f) == 6
}

// Validate checks that s runs: an interval of at least 1ms, or a cron
// expression that parses (with the same parser the scheduler runs it on),
// not both.
func (s Schedule) Validate() (err error) {
	switch {
	case s.IsZero():
		return errors.New("schedule: empty")
	case s.Every != 0 && s.Cron != "":
		return fmt.Errorf("schedule: an interval (%v) and a cron expression (%q); give one", s.Every, s.Cron)
	case s.Every < 0 || (s.Every > 0 && s.Every < time.Millisecond):
		return fmt.Errorf("schedule: interval %v must be at least 1ms", s.Every)
	case s.Every > 0:
		return nil
	}
	// robfig/cron (under gocron) slices past the end of a zone prefix with
	// nothing after it ("TZ=") and panics; say what is wrong instead, and
	// turn any other panic of the parser into an error too (found by
	// FuzzParseSchedule).
	if f := strings.Fields(s.Cron); len(f) == 1 && (strings.HasPrefix(f[0], "CRON_TZ=") || strings.HasPrefix(f[0], "TZ=")) {
		return fmt.Errorf("schedule %q: a time zone and no schedule", s.Cron)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schedule %q: cannot be parsed (%v)", s.Cron, r)
		}
	}()
	if err := gocron.NewDefaultCron(s.HasSeconds()).IsValid(s.Cron, time.UTC, time.Now()); err != nil {
		return fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	return nil
}

// ParseSchedule reads a schedule written in a declaration: a Go duration
// ("5m", or "every 5m") or a cron expression ("cron 0 * * * *", or one
// starting with @ such as "@hourly"). It validates the result, so a typo is
// reported where it was written, not when the scheduler starts.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	var sch Schedule
	switch {
	case s == "":
		return Schedule{}, errors.New("schedule: empty")
	case strings.HasPrefix(s, "cron "):
		sch = Cron(strings.TrimPrefix(s, "cron "))
	case strings.HasPrefix(s, "@"):
		sch = Cron(s)
	default:
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(s, "every ")))
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: a duration (5m, every 5m) or cron EXPR", s)
		}
		sch = Every(d)
	}
	if err := sch.Validate(); err != nil {
		return Schedule{}, err
	}
	return sch, nil
}
