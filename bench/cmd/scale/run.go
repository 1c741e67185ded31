package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/bench/internal/benchdoc"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/source"
)

// variant is a kck binary under test: the checkout's ("new", on the bus)
// or today's code (no bus: it has none).
type variant struct {
	name, label, bin string
	bus              string
}

// gateway is one kck serve process.
type gateway struct {
	base    string // http://127.0.1.x:port
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// change is one committed row change: its sequence number (in the title
// it set), the author whose row it changed, and when its commit returned.
type change struct {
	seq, author int
	at          time.Time
}

// idle is what the cluster used over dur before the load, doing nothing.
type idle struct {
	dur      time.Duration
	cass, gw time.Duration
	cassOK   bool
	ops      map[string]float64
	runs     float64
}

// result is one run: one code at one gateway count.
type result struct {
	v   variant
	n   int
	rep int // the how-manieth run of v at n (pairs repeat the 1-gateway runs)
	err error

	changes       []change
	window        time.Duration // from the load's start until settled
	before, after metrics
	idle          *idle
	cass, gw      time.Duration // CPU used over window
	cassOK        bool
	pushes        pushStats
	followerConns int // most seen during the load
	leaders       int
	// During the load: the 1-minute load average at its start; the
	// longest a write transaction was seen open in another database of
	// the server (it holds back the follower's horizon), and the share of
	// samples that saw one open for 100 ms or more.
	loadAvg        string
	otherXact      time.Duration
	otherXactShare float64

	unheld                    int
	unheldBefore, unheldAfter metrics
}

// runOne measures v with n gateways on a fresh keyspace and database.
func runOne(ctx context.Context, c *config, work string, v variant, n int) (r *result) {
	r = &result{v: v, n: n}
	name := fmt.Sprintf("kck_scale_%s_%d_%d", v.name, n, time.Now().UnixMilli()%100_000_000)
	dir := filepath.Join(work, name)
	if r.err = os.MkdirAll(dir, 0o755); r.err != nil {
		return r
	}
	dbURL, dropDB, err := createDatabase(ctx, c.pgURL, name)
	if err != nil {
		r.err = err
		return r
	}
	defer dropDB()
	if r.err = runCmd(ctx, v.bin, "demo", "load", "--postgres-url", dbURL); r.err != nil {
		return r
	}
	for try := range 3 {
		// A schema change times out now and then on a busy cluster.
		if r.err = runCmd(ctx, v.bin, "migrate", "--cassandra-hosts", c.cassHosts, "--cassandra-keyspace", name,
			"--replication-factor", "3", "--timeout", "3m"); r.err == nil {
			break
		}
		c.logf("migrate %s (try %d): %v", name, try+1, r.err)
	}
	defer dropKeyspace(c, name)
	if r.err != nil {
		return r
	}
	gws, stop, err := startGateways(ctx, c, v, n, dir, dbURL, name)
	defer stop()
	if err != nil {
		r.err = err
		return r
	}
	r.err = measure(ctx, c, r, gws, dbURL, name)
	if r.err != nil {
		r.err = fmt.Errorf("%w%s", r.err, logTails(gws))
	}
	return r
}

// measure holds the products, subscribes, and runs the baseline, the load
// and the unheld changes.
func measure(ctx context.Context, c *config, r *result, gws []*gateway, dbURL, dbName string) error {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	mon, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer mon.Close(context.Background())
	ids := map[int]int{} // author: the title its changes rewrite
	rows, err := db.Query(ctx, `SELECT author_id, min(id) FROM titles GROUP BY author_id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a, id int
		if err := rows.Scan(&a, &id); err != nil {
			rows.Close()
			return err
		}
		ids[a] = id
	}
	if err := rows.Err(); err != nil {
		return err
	}
	held := make([]int, c.authors)
	for i := range held {
		held[i] = i + 1
	}
	unheld := make([]int, c.unheld)
	for i := range unheld {
		unheld[i] = firstUnheld + i
	}
	for _, a := range append(append([]int{}, held...), unheld...) {
		if ids[a] == 0 {
			return fmt.Errorf("the demo has no title of author %d", a)
		}
	}

	c.logf("holding %d keys on every gateway, %d subscriptions each", 2*c.authors+1, c.authors)
	if err := hold(ctx, gws, c.authors); err != nil {
		return err
	}
	subs := make([]*subscriber, len(gws))
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.close()
			}
		}
	}()
	if err := each(gws, func(i int, g *gateway) (err error) {
		subs[i], err = subscribe(ctx, g, c.authors)
		return err
	}); err != nil {
		return err
	}

	wantFollowers := 1
	if r.v.bus == "" {
		wantFollowers = r.n // today: every gateway LISTENs
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		conns, err := followerConns(ctx, mon, dbName)
		if err != nil {
			return err
		}
		m, err := scrape(ctx, gws)
		if err != nil {
			return err
		}
		r.leaders = m.count("kck_leader", map[string]string{"job": "follow/source"}, 1)
		if conns == wantFollowers && (r.v.bus == "" || r.leaders == 1) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("following: %d connections following the change log, %d leaders, after 2 minutes", conns, r.leaders)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := settle(ctx, gws, "", 0, c.drain); err != nil {
		return err
	}

	cassPIDs := c.cassPIDs
	gwPIDs := make([]int, len(gws))
	for i, g := range gws {
		gwPIDs[i] = g.cmd.Process.Pid
	}
	if c.baseline {
		c.logf("idle baseline, %s", c.dur)
		id := &idle{dur: c.dur}
		m0, err := scrape(ctx, gws)
		if err != nil {
			return err
		}
		c0, ok0 := cpuTime(cassPIDs)
		g0, _ := cpuTime(gwPIDs)
		time.Sleep(c.dur)
		m1, err := scrape(ctx, gws)
		if err != nil {
			return err
		}
		c1, ok1 := cpuTime(cassPIDs)
		g1, _ := cpuTime(gwPIDs)
		id.cass, id.cassOK, id.gw = c1-c0, ok0 && ok1 && len(cassPIDs) > 0, g1-g0
		id.ops = deltaBy(m0, m1, "kck_store_operations_total", "kind")
		id.runs = delta(m0, m1, "kck_primer_runs_total", nil)
		r.idle = id
	}

	count := int(c.rate * c.dur.Seconds())
	c.logf("load: %d changes at %.0f/s", count, c.rate)
	if r.before, err = scrape(ctx, gws); err != nil {
		return err
	}
	c0, ok0 := cpuTime(cassPIDs)
	g0, _ := cpuTime(gwPIDs)
	start := time.Now()
	r.loadAvg, _, _ = strings.Cut(benchdoc.LoadAvg(), " ")
	sampled := make(chan struct{})
	sctx, stopSampling := context.WithCancel(ctx)
	go func() {
		defer close(sampled)
		samples, open := 0, 0
		for {
			if a, err := activity(sctx, mon, dbName); err == nil {
				samples++
				r.followerConns = max(r.followerConns, a.followers)
				r.otherXact = max(r.otherXact, a.otherXact)
				if a.otherXact >= 100*time.Millisecond {
					open++
				}
				r.otherXactShare = float64(open) / float64(samples)
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	r.changes, err = applyChanges(ctx, db, held, ids, c.rate, count, 1)
	if err != nil {
		stopSampling()
		<-sampled
		return err
	}
	last := map[int]int{}
	for _, ch := range r.changes {
		last[ch.author] = ch.seq
	}
	pushDeadline := time.Now().Add(c.drain)
	for !allSeen(subs, last) && time.Now().Before(pushDeadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stopSampling()
	<-sampled
	if r.after, err = settle(ctx, gws, r.v.bus, float64(count), c.drain); err != nil {
		return err
	}
	r.window = time.Since(start)
	c1, ok1 := cpuTime(cassPIDs)
	g1, _ := cpuTime(gwPIDs)
	r.cass, r.cassOK, r.gw = c1-c0, ok0 && ok1 && len(cassPIDs) > 0, g1-g0
	r.pushes = pushesOf(subs, r.changes)
	for _, s := range subs {
		if err := s.failure(); err != nil {
			return fmt.Errorf("a subscriber failed: %w", err)
		}
	}

	if c.unheld > 0 {
		c.logf("%d changes to rows of authors nobody reads", c.unheld)
		r.unheld = c.unheld
		r.unheldBefore = r.after
		if _, err := applyChanges(ctx, db, unheld, ids, c.rate, c.unheld, count+1); err != nil {
			return err
		}
		if r.unheldAfter, err = settle(ctx, gws, r.v.bus, float64(count+c.unheld), c.drain); err != nil {
			return err
		}
	}
	return nil
}

// settle waits until the cluster has read want source changes (summed
// over gateways: today's code reads each on every one) and nothing has
// moved for a second: no primer run, refresh, lease wait, dispatch or
// source change, and (new code) no backlog. It returns the last scrape.
func settle(ctx context.Context, gws []*gateway, bus string, want float64, limit time.Duration) (metrics, error) {
	if bus == "" {
		want *= float64(len(gws))
	}
	deadline := time.Now().Add(limit)
	prev, still := -1.0, 0
	for {
		m, err := scrape(ctx, gws)
		if err != nil {
			return nil, err
		}
		read := m.sum("kck_source_changes_total", nil)
		moved := m.sum("kck_primer_runs_total", nil) + m.sum("kck_refreshes_total", nil) + m.sum("kck_lease_waits_total", nil) +
			m.sum("kck_dispatches_total", nil) + read
		if moved == prev && read >= want && m.sum("kck_source_backlog_rows", nil) == 0 {
			still++
		} else {
			still = 0
		}
		if still >= 2 {
			return m, nil
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("not settled within %s: %.0f of %.0f source changes read", limit, read, want)
		}
		prev = moved
		time.Sleep(500 * time.Millisecond)
	}
}

func allSeen(subs []*subscriber, last map[int]int) bool {
	for _, s := range subs {
		for a, seq := range last {
			if !s.seen(a, seq) {
				return false
			}
		}
	}
	return true
}

// applyChanges commits count changes at rate, to the authors in turn,
// each setting its author's first title to its marker; seq numbers start
// at first. A change is timed when its commit returns.
func applyChanges(ctx context.Context, db *pgx.Conn, authors []int, ids map[int]int, rate float64, count, first int) ([]change, error) {
	out := make([]change, 0, count)
	every := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range count {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		a, seq := authors[i%len(authors)], first+i
		if _, err := db.Exec(ctx, `UPDATE titles SET title = $1 WHERE id = $2`, markerTitle(seq), ids[a]); err != nil {
			return nil, fmt.Errorf("change %d: %w", seq, err)
		}
		out = append(out, change{seq: seq, author: a, at: time.Now()})
	}
	return out, nil
}

// followerConns counts the connections to the run's database that follow
// source changes: the new code's follower names its connection (source.
// FollowerApplicationName); today's listeners ran LISTEN last.
func followerConns(ctx context.Context, mon *pgx.Conn, db string) (int, error) {
	a, err := activity(ctx, mon, db)
	return a.followers, err
}

// serverActivity is what pg_stat_activity shows of the server now.
type serverActivity struct {
	followers int
	// otherXact is the oldest write transaction (one with an xid) open in
	// another database: the follower reads no change committed after it
	// started until it ends (its horizon is the server's snapshot xmin).
	otherXact time.Duration
}

func activity(ctx context.Context, mon *pgx.Conn, db string) (serverActivity, error) {
	var a serverActivity
	var secs float64
	err := mon.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE datname = $1 AND (application_name = $2 OR query ILIKE 'LISTEN %')),
		coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)) FILTER (WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM $1), 0)::float8
		FROM pg_stat_activity`, db, source.FollowerApplicationName).Scan(&a.followers, &secs)
	a.otherXact = seconds(secs)
	return a, err
}

// hold reads every held key on every gateway: the first computes them,
// the others read them from the store.
func hold(ctx context.Context, gws []*gateway, authors int) error {
	keys := []string{"top_authors/10"}
	for a := 1; a <= authors; a++ {
		keys = append(keys, fmt.Sprintf("title_list/%d", a), fmt.Sprintf("author_stats/%d", a))
	}
	read := func(_ int, g *gateway) error {
		for i := 0; i < len(keys); i += 10 { // under --max-misses-per-request
			q := url.Values{"key": keys[i:min(i+10, len(keys))]}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/fetch?"+q.Encode(), nil)
			resp, err := scrapeClient.Do(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || bytes.Contains(b, []byte(`"error"`)) {
				return fmt.Errorf("%s/fetch: %s: %.300s", g.base, resp.Status, b)
			}
		}
		return nil
	}
	if err := read(0, gws[0]); err != nil {
		return err
	}
	return each(gws[1:], read)
}

// each runs f for every gateway at once and returns the first error.
func each(gws []*gateway, f func(i int, g *gateway) error) error {
	errs := make([]error, len(gws))
	var wg sync.WaitGroup
	for i, g := range gws {
		wg.Go(func() { errs[i] = f(i, g) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startGateways starts n gateways on 127.0.1.1, 127.0.1.2, ... (away from
// Cassandra's 127.0.0.1-3): the first alone, then the others at once.
func startGateways(ctx context.Context, c *config, v variant, n int, dir, dbURL, keyspace string) ([]*gateway, func(), error) {
	var gws []*gateway
	stop := func() {
		_ = each(gws, func(_ int, g *gateway) error { g.stop(); return nil })
	}
	start := func(i int) (*gateway, error) {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", ip, err)
		}
		addr := ln.Addr().String()
		ln.Close()
		args := []string{"serve", "--addr", addr, "--data-dir", filepath.Join(dir, fmt.Sprintf("gw%d", i+1)), "--log-level", "warn",
			"--store", "cassandra", "--cassandra-hosts", c.cassHosts, "--cassandra-keyspace", keyspace,
			"--postgres-url", dbURL, "--scheduler=false"}
		if v.bus != "" {
			args = append(args, "--bus-url", v.bus)
		}
		g := &gateway{base: "http://" + addr, logPath: filepath.Join(dir, fmt.Sprintf("gw%d.log", i+1)), exited: make(chan struct{})}
		logf, err := os.Create(g.logPath)
		if err != nil {
			return nil, err
		}
		g.cmd = exec.Command(v.bin, args...)
		g.cmd.Env = cleanEnv()
		g.cmd.Stdout, g.cmd.Stderr = logf, logf
		if err := g.cmd.Start(); err != nil {
			logf.Close()
			return nil, err
		}
		go func() { _ = g.cmd.Wait(); logf.Close(); close(g.exited) }()
		return g, nil
	}
	g, err := start(0)
	if err != nil {
		return nil, stop, err
	}
	gws = append(gws, g)
	if err := waitReady(ctx, g); err != nil {
		return gws, stop, err
	}
	for i := 1; i < n; i++ {
		g, err := start(i)
		if err != nil {
			return gws, stop, err
		}
		gws = append(gws, g)
	}
	c.logf("%d gateway(s) started", n)
	return gws, stop, each(gws[1:], func(_ int, g *gateway) error { return waitReady(ctx, g) })
}

// waitReady waits for /readyz to answer 200, at most three minutes.
func waitReady(ctx context.Context, g *gateway) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			return fmt.Errorf("gateway %s exited before it was ready", g.base)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/readyz", nil)
		if resp, err := scrapeClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("gateway %s not ready within 3 minutes", g.base)
}

// stop asks the gateway to shut down (it gives its lease back), and kills
// it after ten seconds.
func (g *gateway) stop() {
	if g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// logTails is the end of every gateway's log that has anything, for an
// error.
func logTails(gws []*gateway) string {
	var b strings.Builder
	for _, g := range gws {
		raw, err := os.ReadFile(g.logPath)
		if err != nil || len(raw) == 0 {
			continue
		}
		if len(raw) > 1500 {
			raw = raw[len(raw)-1500:]
		}
		fmt.Fprintf(&b, "\n--- %s:\n%s", g.base, raw)
	}
	return b.String()
}

// cleanEnv is the environment without KCK_ variables: every setting of a
// gateway is on its command line (today's code must not get a bus).
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KCK_") {
			env = append(env, e)
		}
	}
	return env
}

func runCmd(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), args[0], err, out)
	}
	return nil
}

// createDatabase creates database name on adminURL's server and returns
// its URL and a function that drops it.
func createDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres-url: %w", err)
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	admin.Close(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

func dropKeyspace(c *config, keyspace string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := cassandra.Config{Hosts: splitList(c.cassHosts), Keyspace: keyspace}
	if err := cassandra.DropKeyspace(ctx, cfg); err != nil {
		c.logf("drop keyspace %s: %v", keyspace, err)
	}
}
