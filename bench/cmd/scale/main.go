// Command scale measures what one source row change costs a cluster of
// gateways as the gateway count grows (issue 24), and compares it with the
// code before the change bus ("today's code", -today-commit), in one run on
// one machine.
//
// For each gateway count it starts that many kck processes on loopback
// (127.0.1.1, 127.0.1.2, ...) sharing one Cassandra cluster (a fresh
// keyspace), one PostgreSQL database (the SQL demo, loaded fresh) and, for
// the new code, the NATS bus. Every gateway holds the same products (the
// title lists and author stats of -authors authors, and top_authors/10) and
// has a subscriber (graphql-transport-ws, titleList of every held author).
// The scheduler is off, so that nothing but the row changes makes work.
// After an idle baseline of -d, it updates one title of a held author
// -rate times a second for -d (each title carries a sequence number timed
// at its commit), waits for every subscriber to see every author's last
// change and for the counters to settle, then changes one row of each of
// -unheld authors nobody reads. Per change it reports primer runs, store
// operations by kind, lease waits, bus messages, the CPU of the three
// Cassandra JVMs and of the gateways (idle rate subtracted), the
// commit-to-subscriber push latency on every gateway, the bus hop
// (kck_bus_lag_seconds), and the PostgreSQL connections following the
// change log. With -readme it writes the tables between the scale markers.
//
//	scale [-gateways 1,2,4,8,16] [-today-gateways 1,4,8] [-rate 20] [-d 20s] [-readme bench/README.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kck-go/kck/bench/internal/benchdoc"
)

// config is one invocation's settings.
type config struct {
	// kck is the checkout's binary (built when empty); today is today's
	// code's (built from todayCommit when empty).
	kck, today, todayCommit string
	// repo is the checkout's root.
	repo string
	// counts and todayCounts are the gateway counts of each code.
	counts, todayCounts []int
	pgURL, cassHosts    string
	busURL              string
	// cassPIDs overrides the search for the Cassandra JVMs.
	cassPIDs []int
	rate     float64
	dur      time.Duration
	// pairs is how many times the 1-gateway runs of both codes are made.
	pairs int
	// baseline measures the idle rates over dur before each load.
	baseline bool
	// authors are held (1..authors); unheld authors are changed after the
	// load, from firstUnheld.
	authors, unheld int
	// drain bounds the wait for pushes and counters after a load.
	drain  time.Duration
	readme string
	// smoke: fail on any error, missed push or unexpected count.
	smoke bool
	log   io.Writer
}

// firstUnheld is the first author no gateway reads: above every held one
// (the demo has 300 authors).
const firstUnheld = 251

func main() {
	c := config{log: os.Stderr}
	var counts, todayCounts, pids string
	flag.StringVar(&c.kck, "kck", "", "the checkout's kck binary (default: built from the checkout)")
	flag.StringVar(&c.today, "today", "", "today's kck binary (default: built from -today-commit into .cache/scale)")
	flag.StringVar(&c.todayCommit, "today-commit", "fe0ff85", "the commit of today's code (before the change bus)")
	flag.StringVar(&counts, "gateways", "1,2,4,8,16", "gateway counts of the new code")
	flag.StringVar(&todayCounts, "today-gateways", "1,4,8", "gateway counts of today's code (empty: none)")
	flag.StringVar(&c.pgURL, "postgres-url", os.Getenv("KCK_POSTGRES_URL"), "a PostgreSQL URL whose user may create databases (one per run)")
	flag.StringVar(&c.cassHosts, "cassandra-hosts", os.Getenv("KCK_CASSANDRA_HOSTS"), "the 3-node Cassandra's contact points (one keyspace per run)")
	flag.StringVar(&c.busURL, "bus-url", os.Getenv("KCK_BUS_URL"), "the NATS bus of the new code's gateways")
	flag.StringVar(&pids, "cassandra-pids", "", "the Cassandra JVMs' pids, comma-separated (default: found in /proc from the contact points)")
	flag.Float64Var(&c.rate, "rate", 20, "row changes per second")
	flag.IntVar(&c.pairs, "pairs", 3, "how many interleaved pairs of 1-gateway runs (today's code, then the new) are made, for the CPU comparison")
	flag.DurationVar(&c.dur, "d", 20*time.Second, "duration of the load, and of the idle baseline before it")
	flag.BoolVar(&c.baseline, "baseline", true, "measure the idle rates (Cassandra and gateway CPU, store operations) before each load and subtract them")
	flag.IntVar(&c.authors, "authors", 50, "authors whose title list and stats every gateway holds and subscribes to (at most 250)")
	flag.IntVar(&c.unheld, "unheld", 50, "changes to rows of authors nobody reads (at most 50)")
	flag.DurationVar(&c.drain, "drain", time.Minute, "longest wait after a load for the pushes and counters")
	flag.StringVar(&c.readme, "readme", "", "write the tables into this file between the scale markers")
	flag.BoolVar(&c.smoke, "smoke", false, "fail on any error or missed push; targets are not judged")
	flag.Parse()
	var err error
	if c.counts, err = parseCounts(counts); err != nil {
		fail("-gateways: %v", err)
	}
	if c.todayCounts, err = parseCounts(todayCounts); err != nil {
		fail("-today-gateways: %v", err)
	}
	if pids != "" {
		for _, p := range strings.Split(pids, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				fail("-cassandra-pids: %v", err)
			}
			c.cassPIDs = append(c.cassPIDs, n)
		}
	}
	if c.repo, err = repoRoot(); err != nil {
		fail("%v", err)
	}
	if err := c.validate(); err != nil {
		fail("%v", err)
	}
	rep, err := run(context.Background(), c)
	if err != nil {
		fail("%v", err)
	}
	md := rep.markdown(c)
	fmt.Print(md)
	if c.readme != "" {
		if err := benchdoc.Splice(c.readme, beginMarker, endMarker, md); err != nil {
			fail("%v", err)
		}
	}
	if c.smoke {
		if err := rep.smokeErrors(c); err != nil {
			fail("%v", err)
		}
	}
}

func (c *config) validate() error {
	switch {
	case c.pgURL == "" || c.cassHosts == "":
		return fmt.Errorf("-postgres-url and -cassandra-hosts are needed (KCK_POSTGRES_URL, KCK_CASSANDRA_HOSTS)")
	case len(c.counts) > 0 && c.busURL == "":
		return fmt.Errorf("-bus-url is needed for the new code (KCK_BUS_URL; scripts/nats/ensure.sh prints one)")
	case c.authors < 1 || c.authors >= firstUnheld:
		return fmt.Errorf("-authors must be 1 to %d", firstUnheld-1)
	case c.unheld < 0 || c.unheld > 300-firstUnheld+1:
		return fmt.Errorf("-unheld must be 0 to %d", 300-firstUnheld+1)
	case c.rate <= 0 || c.dur <= 0:
		return fmt.Errorf("-rate and -d must be positive")
	case len(c.counts)+len(c.todayCounts) == 0:
		return fmt.Errorf("no gateway counts")
	}
	for _, n := range append(append([]int{}, c.counts...), c.todayCounts...) {
		if n > 200 {
			return fmt.Errorf("%d gateways: at most 200 (one loopback address each)", n)
		}
	}
	return nil
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a gateway count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// run builds the binaries and measures every run of the plan: today's code
// at its smallest count first, then the new code's counts, then today's
// other counts (so that the two 1-gateway runs are next to each other).
func run(ctx context.Context, c config) (*report, error) {
	rep := &report{started: time.Now(), loadBefore: benchdoc.LoadAvg()}
	work, err := os.MkdirTemp("", "kck-scale-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if c.kck == "" && len(c.counts) > 0 {
		c.kck = filepath.Join(work, "kck")
		c.logf("building the checkout's kck")
		if err := goBuild(c.repo, c.kck); err != nil {
			return nil, err
		}
	}
	if c.today == "" && len(c.todayCounts) > 0 {
		if c.today, rep.todayCommit, err = buildToday(c, c.todayCommit); err != nil {
			return nil, err
		}
	} else if len(c.todayCounts) > 0 {
		rep.todayCommit = c.todayCommit
	}
	if len(c.cassPIDs) == 0 {
		c.cassPIDs, rep.cassNote = cassandraPIDs(splitList(c.cassHosts))
	} else {
		rep.cassNote = "pids given with -cassandra-pids"
	}
	c.logf("Cassandra JVMs: %v (%s)", c.cassPIDs, rep.cassNote)
	newCode := variant{name: "new", label: "new", bin: c.kck, bus: c.busURL}
	today := variant{name: "today", label: "today's code", bin: c.today}
	type step struct {
		v variant
		n int
	}
	var plan []step
	add := func(v variant, n int) { plan = append(plan, step{v, n}) }
	// The 1-gateway runs of both codes in interleaved pairs, first: the
	// CPU comparison is judged on their median, as the shared machine's
	// background load drifts.
	pairs := 0
	if slices.Contains(c.counts, 1) && slices.Contains(c.todayCounts, 1) {
		pairs = max(1, c.pairs)
	}
	for range pairs {
		add(today, 1)
		add(newCode, 1)
	}
	for _, n := range c.counts {
		if n != 1 || pairs == 0 {
			add(newCode, n)
		}
	}
	for _, n := range c.todayCounts {
		if n != 1 || pairs == 0 {
			add(today, n)
		}
	}
	reps := map[step]int{}
	for _, p := range plan {
		c.logf("== %s, %d gateway(s)", p.v.label, p.n)
		reps[p]++
		r := runOne(ctx, &c, work, p.v, p.n)
		r.rep = reps[p]
		if r.err != nil {
			c.logf("%s, %d gateway(s): %v", p.v.label, p.n, r.err)
			if c.smoke {
				return nil, fmt.Errorf("%s, %d gateway(s): %w", p.v.label, p.n, r.err)
			}
		}
		rep.runs = append(rep.runs, r)
	}
	rep.loadAfter = benchdoc.LoadAvg()
	rep.took = time.Since(rep.started)
	return rep, nil
}

func (c *config) logf(format string, args ...any) {
	if c.log != nil {
		fmt.Fprintf(c.log, "%s scale: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// repoRoot is the checkout's root (the make target runs from it, a test
// from its package's folder).
func repoRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("not in the checkout (git rev-parse: %w)", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func goBuild(dir, out string) error {
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
	}
	return nil
}

// buildToday builds the kck binary of commit from its tree (git archive,
// into .cache/scale, which git ignores), once per commit.
func buildToday(c config, commit string) (bin, full string, err error) {
	out, err := exec.Command("git", "-C", c.repo, "rev-parse", "--verify", commit+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("-today-commit %s: %w", commit, err)
	}
	full = strings.TrimSpace(string(out))
	cache := filepath.Join(c.repo, ".cache", "scale")
	bin = filepath.Join(cache, "kck-"+full[:12])
	if _, err := os.Stat(bin); err == nil {
		return bin, full, nil
	}
	src := filepath.Join(cache, "src-"+full[:12])
	_ = os.RemoveAll(src)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", err
	}
	c.logf("building today's kck (%s) in %s", full[:12], src)
	sh := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", c.repo, full, src)
	if b, err := sh.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %w\n%s", full, err, b)
	}
	if err := goBuild(src, bin+".tmp"); err != nil {
		return "", "", err
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		return "", "", err
	}
	_ = os.RemoveAll(src)
	return bin, full, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+strings.TrimSuffix(format, "\n")+"\n", args...)
	os.Exit(1)
}
