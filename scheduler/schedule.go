package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Schedule says when a job runs: every interval, or on a cron expression.
// The zero Schedule never runs.
type Schedule struct {
	every time.Duration
	expr  string
	cron  gocron.Cron // parsed by check
}

// Every runs a job every d, at multiples of d since the zero time (so every
// gateway runs it at the same instants: 12:00:00, 12:00:10, ... for 10 s).
func Every(d time.Duration) Schedule { return Schedule{every: d} }

// Cron runs a job on a cron expression: five fields (minute first), or six
// with seconds first; descriptors such as @hourly and @every 5m; an optional
// CRON_TZ=Zone prefix, else the scheduler's Location.
func Cron(expr string) Schedule { return Schedule{expr: strings.TrimSpace(expr)} }

// IsZero reports whether s never runs.
func (s Schedule) IsZero() bool { return s.every == 0 && s.expr == "" }

func (s Schedule) String() string {
	if s.every != 0 {
		return "every " + s.every.String()
	}
	if s.expr != "" {
		return "cron " + s.expr
	}
	return "never"
}

func (s Schedule) withSeconds() bool {
	f := strings.Fields(s.expr)
	if len(f) > 0 && (strings.HasPrefix(f[0], "CRON_TZ=") || strings.HasPrefix(f[0], "TZ=")) {
		f = f[1:]
	}
	return len(f) == 6
}

// check validates s and parses its cron expression.
func (s Schedule) check(loc *time.Location, now time.Time) (_ Schedule, err error) {
	switch {
	case s.IsZero():
		return s, errors.New("schedule: empty")
	case s.every < 0 || (s.every > 0 && s.every < time.Millisecond):
		return s, fmt.Errorf("schedule: interval %v must be at least 1ms", s.every)
	case s.every > 0:
		return s, nil
	}
	// robfig/cron (under gocron) slices past the end of a zone prefix with
	// nothing after it ("TZ=") and panics; say what is wrong instead, and
	// turn any other panic of the parser into an error too (found by
	// FuzzParseSchedule).
	if f := strings.Fields(s.expr); len(f) == 1 && (strings.HasPrefix(f[0], "CRON_TZ=") || strings.HasPrefix(f[0], "TZ=")) {
		return s, fmt.Errorf("schedule %q: a time zone and no schedule", s.expr)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schedule %q: cannot be parsed (%v)", s.expr, r)
		}
	}()
	c := gocron.NewDefaultCron(s.withSeconds())
	if err := c.IsValid(s.expr, loc, now); err != nil {
		return s, fmt.Errorf("schedule %q: %w", s.expr, err)
	}
	s.cron = c
	return s, nil
}

// definition is the gocron job definition of a checked s.
func (s Schedule) definition() gocron.JobDefinition {
	if s.every > 0 {
		return gocron.DurationJob(s.every)
	}
	return gocron.CronJob(s.expr, s.withSeconds())
}

// startOptions align an interval job on multiples of its interval.
func (s Schedule) startOptions(now time.Time) []gocron.JobOption {
	if s.every == 0 {
		return nil
	}
	start := now.Truncate(s.every).Add(s.every)
	if start.Sub(now) < 10*time.Millisecond {
		start = start.Add(s.every)
	}
	return []gocron.JobOption{gocron.WithStartAt(gocron.WithStartDateTime(start))}
}

// slot returns the scheduled run a run at now belongs to: the scheduled
// instant nearest to now for an interval, the last scheduled instant no more
// than half a period before now for a cron expression. Runs of the same
// slot on different gateways, whose tickers drift apart by less than half a
// period, get the same slot. period is the time to the next slot.
func (s Schedule) slot(now time.Time) (start time.Time, period time.Duration) {
	if s.every > 0 {
		return now.Add(s.every / 2).Truncate(s.every), s.every
	}
	if s.cron == nil {
		return now, 0
	}
	next := s.cron.Next(now)
	period = s.cron.Next(next).Sub(next)
	start = s.cron.Next(now.Add(-period / 2))
	if start.After(now.Add(period / 2)) { // no slot near now (irregular cron)
		start = now
	}
	return start, period
}

// ParseSchedule reads a schedule written in a declaration: a Go duration
// ("5m", or "every 5m") or a cron expression ("cron 0 * * * *", or one
// starting with @ such as "@hourly"). It checks the expression, so a typo
// is reported where it was written, not when the scheduler starts.
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
	if _, err := sch.check(time.UTC, time.Now()); err != nil {
		return Schedule{}, err
	}
	return sch, nil
}
