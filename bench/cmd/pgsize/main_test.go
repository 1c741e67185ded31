package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kck-go/kck/internal/pgtest"
)

// The tool runs end to end at a tiny size, with and without the queue (a
// smoke run; not timed): a row per -every refreshes, and the sizes after a
// vacuum.
func TestRunSmall(t *testing.T) {
	for _, useQueue := range []bool{false, true} {
		var out bytes.Buffer
		c := config{url: pgtest.URL(t), keys: 20, refreshes: 200, conc: 4, every: 100, valueBytes: 2048, batch: 5, useQueue: useQueue}
		if err := run(t.Context(), &out, c); err != nil {
			t.Fatalf("queue %v: %v\n%s", useQueue, err, out.String())
		}
		s := out.String()
		for _, want := range []string{"| 100 |", "| 200 |", "after a plain VACUUM: cache_entries heap"} {
			if !strings.Contains(s, want) {
				t.Errorf("queue %v: no %q in\n%s", useQueue, want, s)
			}
		}
	}
}
