//go:build faults

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one scenario's line of docs/reliability.md, filled by its test.
type row struct {
	order    int
	Scenario string
	Expected string
	Load     string
	Failed   string
	Stale    string
	DataLost string
	Recover  string
	Notes    []string
	pass     bool
	ran      time.Duration
}

var report struct {
	mu   sync.Mutex
	rows []*row
}

// scenario registers the test's row; its outcome is the test's.
func scenario(t *testing.T, order int, name, expected string) *row {
	r := &row{order: order, Scenario: name, Expected: expected, Load: "-", Failed: "-", Stale: "-", DataLost: "-", Recover: "-"}
	t0 := time.Now()
	t.Cleanup(func() {
		r.pass = !t.Failed()
		r.ran = time.Since(t0)
		// The row in the test's log too: the CI form writes no report.
		t.Logf("%s (ran %.0f s)\n  load: %s\n  failed: %s\n  stale: %s\n  data lost: %s\n  recover: %s\n  - %s",
			r.Scenario, r.ran.Seconds(), r.Load, r.Failed, r.Stale, r.DataLost, r.Recover, strings.Join(r.Notes, "\n  - "))
		report.mu.Lock()
		report.rows = append(report.rows, r)
		report.mu.Unlock()
	})
	return r
}

func (r *row) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// departures says where the suite's outcomes differ from issue 14's
// wording, and why.
const departures = `
Where the outcomes above differ from issue 14's wording, deliberately:

- **Quorum lost: misses and writes are answered, not refused.** When a store call fails,
  the cache computes from PostgreSQL and serves the value (counted in
  ` + "`kck_store_errors_total`" + `), so a miss or a write's refresh is slower (each store call
  waits for its timeout) but answered; 503 UNAVAILABLE comes only when nothing can answer
  (PostgreSQL down too). Refusing with 503 while the data's source answers would turn a
  store outage into an application outage.
- **Disk full: misses and updates are answered, and the store write fails.** The value is
  served from memory and not stored; the failure is logged (ENOSPC) and counted. Calls that
  return the store's own error (an invalidation) answer 507 STORAGE_FULL. An ` + "`/update`" + `'s
  PostgreSQL write has committed by then: failing the request would invite a retry that
  writes twice.
- **The soak's rate.** The load generator runs on the same 2 cores as the gateway. The
  soak asks for 70% of the closed-loop maximum measured with the same generator just before;
  a request the generator cannot send on time (its queue full while the machine stalls) is
  an overrun, counted and not sent late, and Load held says the rate sent and answered.

Where the change-bus and PostgreSQL-store scenarios differ from issues 24's and 25's wording:

- **The PostgreSQL store down, its source up: misses and writes are answered**, computed
  from the source as on Cassandra (the store's failures counted in
  ` + "`kck_store_errors_total`" + `), not refused with 503. A write's refreshed products are served
  from memory meanwhile and stored once the store is back: a refresh of a source change
  whose value the store refused is handed out again, and the change log's next follower
  reads its row again. With the store in the source's database both are down, and misses
  and writes answer 503 UNAVAILABLE.
- **A gateway cut off by a partition serves unflagged until its pings fail** (3 ping
  intervals at most, 15 s): values that may have been replaced meanwhile. A connection
  that closes (the server killed) is noticed at once. When the partition heals, the other
  gateways drop their in-process tier too: what the cut-off gateway published into the
  dead connection shows them a gap in its sequence. A refresh the follower hands to the
  cut-off gateway during the partition waits out the assignment's bound (compute lease +
  primer timeout, 60 s by default) before the follower refreshes the key itself.
- **Not covered: the follower itself cut off from the bus.** It keeps its lease (in the
  store, which it still reaches) and stores what changes, but the other gateways hear of
  none of it until the partition heals and serve their in-process values unflagged
  meanwhile. A follower could give its lease up while cut off, so that a connected gateway
  follows; then, with the whole bus down, nobody would follow until it is back (the log
  keeps the changes). Left open.
- **Takeover** is measured against lease + lease/3 plus the store's answer to one look at
  the lease (at most lease/3), which the bound leaves out.
`

func writeReport(path string) error {
	report.mu.Lock()
	rows := report.rows
	report.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].order < rows[j].order })
	commit, _ := exec.Command("git", "-C", suite.repo, "rev-parse", "--short", "HEAD").Output()
	var b strings.Builder
	b.WriteString(`# Reliability: what KCK survives, measured

Written by ` + "`make faults`" + ` (the suite in [faults/](../faults/)); do not edit by hand.
Each scenario runs real gateway processes (the kck binary) on loopback against the
suite's own PostgreSQL (a cluster of its own, port 5440; a second one, port 5441, for the
PostgreSQL store's database), a 3-node Apache Cassandra 5.0 (RF 3, QUORUM, nodes on
127.0.0.11-13) and a NATS server (the change bus, port 4232), under an open-loop load at a fixed rate, injects
one fault and asserts the outcome stated in its row: a regression fails the Go test
(` + "`make faults-ci`" + ` in CI, with a shorter soak and its fixed phases halved).

`)
	fmt.Fprintf(&b, "Run: %s, commit %s, soak %v, load average at the end %s on %d cores shared with other work (figures from a busy machine: latencies are upper bounds).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(string(commit)), suite.soak, loadAvg(), runtime.NumCPU())
	b.WriteString("| Scenario | Expected outcome | Load held | Requests failed (count, status) | Served stale | Data lost | Time to recover | Outcome |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		outcome := "**met**"
		if !r.pass {
			outcome = "**NOT MET**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			cell(r.Scenario), cell(r.Expected), cell(r.Load), cell(r.Failed), cell(r.Stale), cell(r.DataLost), cell(r.Recover), outcome)
	}
	b.WriteString(departures)
	b.WriteString("\n## Details\n\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "### %s\n\n", r.Scenario)
		fmt.Fprintf(&b, "Expected: %s. Ran %.0f s.\n\n", r.Expected, r.ran.Seconds())
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString(`## Reproduce

` + "```sh" + `
make faults                      # the full suite (10-minute soak); writes this file
make faults-ci                   # the CI form (30 s soak, fixed phases halved), same assertions
KCK_FAULTS_SOAK=2m make faults   # another soak length
` + "```" + `

The suite starts what it needs and reuses it when it runs: its Cassandra cluster
(` + "`scripts/cassandra/*.sh`" + ` with ` + "`KCK_CASSANDRA_NODE_BASE=10`" + ` and run dir ` + "`.cache/faults/cassandra`" + `,
so the project's own cluster on 127.0.0.1-3 is never touched) and its PostgreSQL cluster
(` + "`scripts/faults/postgres.sh`" + `, the Debian cluster ` + "`faults`" + ` on port 5440: the suite stops it,
so it is not the project's; the PostgreSQL-store scenarios start a second one, ` + "`faultstore`" + `
on port 5441, and stop it when done) and its NATS server (` + "`scripts/nats/ensure.sh`" + ` on port
4232, stopped at the end). Stop them with
` + "`KCK_CASSANDRA_NODE_BASE=10 KCK_CASSANDRA_RUN_DIR=.cache/faults/cassandra scripts/cassandra/down.sh`" + `
and ` + "`scripts/faults/postgres.sh stop`" + `. Gateway logs of the last run are in ` + "`.cache/faults/logs/`" + `.
`)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
