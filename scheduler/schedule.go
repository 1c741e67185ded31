package scheduler

import (
	"fmt"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/kck-go/kck/primers"
)

// schedule is a checked primers.Schedule, its cron expression parsed.
type schedule struct {
	primers.Schedule
	cron gocron.Cron
}

// check validates s and parses its cron expression in loc.
func check(s primers.Schedule, loc *time.Location, now time.Time) (schedule, error) {
	if err := s.Validate(); err != nil {
		return schedule{}, err
	}
	out := schedule{Schedule: s}
	if s.Every > 0 {
		return out, nil
	}
	c := gocron.NewDefaultCron(s.HasSeconds())
	if err := c.IsValid(s.Cron, loc, now); err != nil {
		return schedule{}, fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	out.cron = c
	return out, nil
}

// definition is the gocron job definition of s.
func (s schedule) definition() gocron.JobDefinition {
	if s.Every > 0 {
		return gocron.DurationJob(s.Every)
	}
	return gocron.CronJob(s.Cron, s.HasSeconds())
}

// startOptions align an interval job on multiples of its interval.
func (s schedule) startOptions(now time.Time) []gocron.JobOption {
	if s.Every == 0 {
		return nil
	}
	start := now.Truncate(s.Every).Add(s.Every)
	if start.Sub(now) < 10*time.Millisecond {
		start = start.Add(s.Every)
	}
	return []gocron.JobOption{gocron.WithStartAt(gocron.WithStartDateTime(start))}
}

// slot returns the scheduled run a run at now belongs to: the scheduled
// instant nearest to now for an interval, the last scheduled instant no more
// than half a period before now for a cron expression. Runs of the same
// slot on different gateways, whose tickers drift apart by less than half a
// period, get the same slot. period is the time to the next slot.
func (s schedule) slot(now time.Time) (start time.Time, period time.Duration) {
	if s.Every > 0 {
		return now.Add(s.Every / 2).Truncate(s.Every), s.Every
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
