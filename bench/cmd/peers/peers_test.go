package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/bench/internal/benchdoc"
)

// TestMain lets the test binary serve the ceiling too: startStatic runs
// os.Executable() static ADDR FILE, which is this binary in a test.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == "static" {
		serveStatic(os.Args[2], os.Args[3])
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs the harness once, about a second per point, on the ceiling,
// KCK on the embedded store and gqlgen (no Node peers, no Cassandra): every
// server must answer the same data, with no error under either load, and the
// report must have every table. Figures are not judged.
func TestSmoke(t *testing.T) {
	pgURL := os.Getenv("KCK_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("KCK_POSTGRES_URL is not set")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk is not installed")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "github.com/kck-go/kck", "github.com/kck-go/kck/bench/cmd/gqlpeer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := config{
		kck: filepath.Join(bin, "kck"), gqlpeer: filepath.Join(bin, "gqlpeer"),
		pgURL: pgURL, database: "kck_peers_smoke",
		only: map[string]bool{"static": true, "kck-embedded": true, "gqlgen": true},
		dur:  time.Second, openDur: time.Second, conns: 16, wrkThreads: 1,
		keys: []int{1, authors}, missN: 20, smoke: true,
	}
	rep, err := run(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"static", "kck-embedded", "gqlgen"} {
		for _, k := range c.keys {
			r, ok := rep.closed[name][k]
			if !ok || r.rps <= 0 {
				t.Errorf("%s, %d keys: no closed-loop figure (%+v)", name, k, r)
			}
			if got := len(rep.open[name][k]); got != len(fractions) {
				t.Errorf("%s, %d keys: %d open-loop points, want %d", name, k, got, len(fractions))
			}
		}
	}
	if len(rep.miss) != 1 || rep.miss[0].store != "embedded" || rep.miss[0].firstP50 <= 0 {
		t.Errorf("miss path: %+v, want one embedded row", rep.miss)
	}
	md := rep.markdown(c)
	for _, want := range []string{"Closed loop", "Open loop", "The miss path", "Targets, from this run", "gqlgen over pgx"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report has no %q:\n%s", want, md)
		}
	}
	readme := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(readme, []byte("before\n"+beginMarker+"\nold\n"+endMarker+"\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := benchdoc.Splice(readme, beginMarker, endMarker, md); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(readme)
	if !strings.HasPrefix(string(got), "before\n"+beginMarker+"\n"+md) || !strings.HasSuffix(string(got), endMarker+"\nafter\n") || strings.Contains(string(got), "\nold\n") {
		t.Errorf("splice: %s", got)
	}
}

// TestMissOnly measures the miss path alone (make bench's form), on the
// embedded store and the PostgreSQL store: one row each, and no load tables.
func TestMissOnly(t *testing.T) {
	pgURL := os.Getenv("KCK_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("KCK_POSTGRES_URL is not set")
	}
	c := config{pgURL: pgURL, database: "kck_peers_miss_test", missOnly: true, missN: 10,
		only: map[string]bool{"kck-embedded": true, "kck-postgres": true}}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), pgURL)
		if err == nil {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS kck_peers_miss_test WITH (FORCE)")
			_ = admin.Close(context.Background())
		}
	})
	rep, err := run(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.miss) != 2 || rep.miss[0].store != "embedded" || rep.miss[1].store != "PostgreSQL" || rep.miss[1].firstP50 <= 0 {
		t.Fatalf("miss path: %+v, want an embedded and a PostgreSQL row", rep.miss)
	}
	md := rep.markdown(c)
	if !strings.Contains(md, "| PostgreSQL |") || !strings.Contains(md, "miss path, PostgreSQL store: p50 overhead") || strings.Contains(md, "Closed loop") {
		t.Errorf("report:\n%s", md)
	}
}
