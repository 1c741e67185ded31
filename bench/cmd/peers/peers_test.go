package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeersSmoke runs the whole harness once, briefly (not timed): npm ci of
// the peers, every server but kck-cassandra started and checked for the same
// data, one second per closed- and open-loop point, 20 first reads per store.
// kck-cassandra is left out: its boot warming of 601 keys on a cold cluster
// alone takes minutes (issue 13, item 4); the miss path still runs on
// Cassandra when KCK_CASSANDRA_HOSTS is set. It fails on any error or
// mismatch; figures are not judged.
func TestPeersSmoke(t *testing.T) {
	pg := os.Getenv("KCK_POSTGRES_URL")
	if pg == "" {
		t.Skip("KCK_POSTGRES_URL is not set")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("./bench/peers/setup.sh")
	bin := t.TempDir()
	run("go", "build", "-o", bin+"/kck", ".")
	run("go", "build", "-o", bin+"/gqlpeer", "./bench/cmd/gqlpeer")
	run("go", "build", "-o", bin+"/peers", "./bench/cmd/peers")
	cmd := exec.Command(bin+"/peers", "-smoke", "-kck", bin+"/kck", "-gqlpeer", bin+"/gqlpeer", "-node-dir", "bench/peers",
		"-postgres-url", pg, "-database", "kck_peers_smoke", "-cassandra-keyspace", "kck_peers_smoke",
		"-only", "yoga,apollo,postgraphile,gqlgen,kck-embedded", "-d", "1s", "-miss", "20")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peers: %v\n%s", err, out)
	}
	for _, want := range []string{"GraphQL Yoga", "Apollo Server", "PostGraphile", "gqlgen over pgx", "KCK, embedded store", "The miss path"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the report has no row for %q:\n%s", want, out)
		}
	}
}
