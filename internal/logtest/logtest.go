// Package logtest keeps what a test's code logged, so that the test can
// read it.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Capture is a slog.Handler that keeps every record as a line of text,
// "LEVEL message key=value ...", from any goroutine.
type Capture struct {
	mu   sync.Mutex
	recs []string
	errs int
}

// Enabled keeps every level.
func (c *Capture) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps r.
func (c *Capture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, b.String())
	if r.Level >= slog.LevelError {
		c.errs++
	}
	return nil
}

// WithAttrs returns c: the attributes are not kept.
func (c *Capture) WithAttrs([]slog.Attr) slog.Handler { return c }

// WithGroup returns c.
func (c *Capture) WithGroup(string) slog.Handler { return c }

// Count returns how many records contain s.
func (c *Capture) Count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

// Errors returns how many records were at level error or above, and them.
func (c *Capture) Errors() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		if strings.HasPrefix(r, "ERROR") {
			out = append(out, r)
		}
	}
	return c.errs, out
}
