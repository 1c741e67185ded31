package scheduler

import (
	"log/slog"
	"sync"
	"time"
)

// failLog keeps a job that fails every run (the queue drain while the store
// is down, every second) from writing a line per run: a job's failure is
// logged when it starts failing or its error changes, then at most once per
// repeatEvery with the count of failed runs in between, and its recovery
// once. The metrics count every run.
type failLog struct {
	log         *slog.Logger
	repeatEvery time.Duration
	now         func() time.Time

	mu   sync.Mutex
	jobs map[string]*failState
}

type failState struct {
	err        string
	since      time.Time // first failure of this streak
	lastLogged time.Time
	failed     int // runs failed in this streak
	unlogged   int // of which not logged
}

func newFailLog(log *slog.Logger) *failLog {
	return &failLog{log: log, repeatEvery: time.Minute, now: time.Now, jobs: map[string]*failState{}}
}

func (l *failLog) failed(job string, slot time.Time, err error) {
	now := l.now()
	msg := err.Error()
	l.mu.Lock()
	st := l.jobs[job]
	if st == nil {
		st = &failState{since: now}
		l.jobs[job] = st
	}
	st.failed++
	if st.failed > 1 && msg == st.err && now.Sub(st.lastLogged) < l.repeatEvery {
		st.unlogged++
		l.mu.Unlock()
		return
	}
	unlogged, failed, since := st.unlogged, st.failed, st.since
	st.err, st.lastLogged, st.unlogged = msg, now, 0
	l.mu.Unlock()
	if failed == 1 {
		l.log.Warn("job failed", "job", job, "slot", slot, "err", err)
		return
	}
	l.log.Warn("job still failing", "job", job, "slot", slot, "err", err,
		"runs_failed", failed, "runs_not_logged", unlogged, "failing_for", now.Sub(since).Round(time.Millisecond).String())
}

func (l *failLog) succeeded(job string) {
	l.mu.Lock()
	st := l.jobs[job]
	delete(l.jobs, job)
	l.mu.Unlock()
	if st != nil {
		l.log.Info("job recovered", "job", job, "runs_failed", st.failed,
			"failing_for", l.now().Sub(st.since).Round(time.Millisecond).String())
	}
}
