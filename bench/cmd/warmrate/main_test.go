package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/pgtest"
)

// The tool runs end to end at a tiny size on every store (CI's smoke run;
// not timed): every phase leaves every key in the in-process tier, each
// key's primer ran once when warming cold, and not at all when warming
// from the store.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Stores: []string{"embedded", "postgres", "cassandra"}, Keys: []int{40}, CassandraHosts: cassandratest.Hosts(t), PostgresURL: pgtest.URL(t)}
	if err := Run(t.Context(), &out, cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"| embedded | 40 | warm, cold |", "| embedded | 40 | warm, stored |", "| embedded | 40 | refresh |",
		"| postgres | 40 | warm, cold |", "| postgres | 40 | warm, stored |", "| postgres | 40 | refresh |",
		"| cassandra | 40 | warm, cold |", "| cassandra | 40 | warm, stored |", "| cassandra | 40 | refresh |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no row %q in\n%s", want, s)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Split(line, " | ")
		if len(f) < 6 {
			continue
		}
		switch {
		case strings.Contains(line, "warm, cold") && f[5] != "1.00":
			t.Errorf("cold warming ran %s primers per key, want 1.00: %s", f[5], line)
		case strings.Contains(line, "warm, stored") && f[5] != "0.00":
			t.Errorf("warming from the store ran %s primers per key, want 0.00: %s", f[5], line)
		}
	}
}
