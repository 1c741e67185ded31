package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kck-go/kck/cache/cachetest"
)

// logCapture is a slog.Handler that keeps every record, so that tests can
// see what was logged (and fuzz targets can fail on a recovered panic).
type logCapture struct {
	mu   sync.Mutex
	recs []string
	errs int
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, b.String())
	if r.Level >= slog.LevelError {
		l.errs++
	}
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

// count returns how many records contain s.
func (l *logCapture) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

// errors returns the records at level error or above.
func (l *logCapture) errors() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if strings.HasPrefix(r, "ERROR") {
			out = append(out, r)
		}
	}
	return l.errs, out
}

// newFakeClock is a cache.Clock that moves only when told to.
func newFakeClock() *cachetest.Clock {
	return cachetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// gqlReply is a GraphQL response with its errors' extensions.
type gqlReply struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// gqlBody is the POST body of a query.
func gqlBody(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}
