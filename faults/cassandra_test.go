//go:build faults

package faults

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// killNodes SIGKILLs nodes of the suite's cluster (at once, in parallel).
func killNodes(t *testing.T, nodes ...int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			_, err := script("cassandra/stop-node.sh", fmt.Sprint(n), "--kill")
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}

// startNodes restarts nodes with their data, all at once (one
// start-node.sh), and waits until each answers and the running nodes see
// each other.
func startNodes(t *testing.T, nodes ...int) {
	t.Helper()
	args := make([]string, len(nodes))
	for i, n := range nodes {
		args[i] = fmt.Sprint(n)
	}
	_, err := script("cassandra/start-node.sh", args...)
	require.NoError(t, err)
}

// flushSchema writes every running node's schema tables to disk. The
// suite's nodes run with -Dcassandra.unsafesystem=true (fast schema changes
// for the unit tests), which keeps schema changes out of the commit log: a
// keyspace created since the last flush is gone from a node SIGKILLed and
// restarted, and once every node is, the cluster has lost it (measured: the
// replay skips the keyspace's mutations as "unknown CF", and the gateways'
// pools fail USE <keyspace>, "no hosts available", until someone migrates
// again; a single node restarted does not always pull it back from its
// peers). A production node keeps its schema; a scenario that kills a node
// calls this first so that it tests the gateway, not the test cluster's
// shortcut.
func flushSchema(t *testing.T) {
	t.Helper()
	var wg sync.WaitGroup
	for n := 1; n <= len(suite.cassHosts); n++ {
		wg.Go(func() {
			_, err := script("cassandra/nodetool.sh", fmt.Sprint(n), "flush", "system_schema")
			assert.NoError(t, err, "flush node%d's schema", n)
		})
	}
	wg.Wait()
}

// storeErrors sums a gateway's kck_store_errors_total series.
func storeErrors(g *gateway) (float64, error) {
	m, err := g.metrics()
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "kck_store_errors_total") {
			sum += v
		}
	}
	return sum, nil
}

// waitStoreQuiet waits until no store call of any gateway has failed for
// quiet (the store serves them all again); returns when the last failure
// was seen, measured from now, and false when they still failed now and
// then after within (a figure, not an assertion: on a loaded machine a
// change-feed poll times out now and then with every node up; the
// scenario asserts recovery on the requests).
func waitStoreQuiet(t *testing.T, quiet, within time.Duration, gws ...*gateway) (time.Duration, bool) {
	t.Helper()
	t0 := time.Now()
	last, lastChange := -1.0, time.Now()
	for {
		sum := 0.0
		for _, g := range gws {
			n, err := storeErrors(g)
			require.NoError(t, err)
			sum += n
		}
		if sum != last {
			last, lastChange = sum, time.Now()
		}
		if time.Since(lastChange) >= quiet {
			return lastChange.Sub(t0), true
		}
		if time.Since(t0) > within {
			return lastChange.Sub(t0), false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// restoreCluster is every scenario's cleanup: whatever failed, the next one
// gets 3 running nodes.
func restoreCluster(t *testing.T) {
	t.Cleanup(func() {
		if _, err := script("cassandra/start-node.sh", "1", "2", "3"); err != nil {
			t.Logf("restore the cluster: %v", err)
		}
	})
}

// versions reads key -> version of the keyspace's cache entries: at QUORUM
// through the cluster, or (node > 0) at ONE from that node alone, which
// answers from its own replica.
func versions(ks string, node int) (map[string]int64, error) {
	hosts := suite.cassHosts
	cl := gocql.NewCluster(hosts...)
	cl.Keyspace = ks
	cl.Consistency = gocql.Quorum
	cl.Timeout = 10 * time.Second
	if node > 0 {
		host := strings.Split(hosts[node-1], ":")[0]
		cl = gocql.NewCluster(hosts[node-1])
		cl.Keyspace = ks
		cl.Consistency = gocql.One
		cl.Timeout = 10 * time.Second
		cl.HostFilter = gocql.WhiteListHostFilter(host)
	}
	s, err := cl.CreateSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := map[string]int64{}
	it := s.Query("SELECT key, version FROM cache_entries").Iter()
	var (
		k string
		v int64
	)
	for it.Scan(&k, &v) {
		out[k] = v
	}
	return out, it.Close()
}

// waitCaughtUp waits until node holds every cache entry at the version the
// cluster's quorum holds (hints replayed); returns how long it took.
func waitCaughtUp(t *testing.T, ks string, node int, within time.Duration) (time.Duration, int) {
	t.Helper()
	t0 := time.Now()
	var last string
	for time.Since(t0) < within {
		want, err := versions(ks, 0)
		if err == nil {
			var got map[string]int64
			got, err = versions(ks, node)
			if err == nil {
				behind := 0
				for k, v := range want {
					if got[k] < v {
						behind++
					}
				}
				if behind == 0 {
					return time.Since(t0), len(want)
				}
				last = fmt.Sprintf("%d of %d entries behind", behind, len(want))
			}
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.FailNow(t, "not caught up", "node%d not caught up within %v: %s", node, within, last)
	return 0, 0
}

// waitQuiet lets the load run until quiet has passed with no failure in the
// phase (at most within); returns the time of the phase's last failure
// (zero: none).
func waitQuiet(t *testing.T, l *load, phase string, quiet, within time.Duration) time.Time {
	t.Helper()
	t0 := time.Now()
	failed, since := l.all(phase).Failed, time.Now()
	var lastFail time.Time
	for time.Since(since) < quiet {
		require.Less(t, time.Since(t0), within, "failures went on in %q: %s", phase, l.all(phase).failures())
		time.Sleep(250 * time.Millisecond)
		if f := l.all(phase).Failed; f != failed {
			failed, since, lastFail = f, time.Now(), time.Now()
		}
	}
	return lastFail
}

// With RF 3 at QUORUM one node's loss is invisible: no read or write
// fails, and once restarted the node catches up (hints) with what was
// written while it was down.
func TestCassandraOneNodeKilled(t *testing.T) {
	r := scenario(t, 10, "One Cassandra node SIGKILLed (RF 3, QUORUM)", "0 failed reads, 0 failed writes; the node, restarted, catches up")
	needCassandra(t)
	restoreCluster(t)
	dsn := database(t)
	ks := keyspaceName(t)
	a := startGateway(t, "a", gatewayConfig{keyspace: ks, postgres: dsn})
	b := startGateway(t, "b", gatewayConfig{keyspace: ks, postgres: dsn})
	w := newWrites(uniqueName(t))
	l := startLoad(hotStream(100, a, b), missStream(2, a, b), w.stream(5, a, b))
	// node3 restarted must still know the keyspace (see flushSchema): seen
	// without it, node3 came back without the gateways' keyspace, and a
	// session to it alone failed USE for 3 minutes.
	flushSchema(t)
	hold(5 * time.Second)

	l.setPhase("node down")
	killNodes(t, 3)
	killed := time.Now()
	hold(15 * time.Second)
	l.setPhase("restarting")
	startNodes(t, 3)
	back := time.Now()
	l.setPhase("after")
	hold(5 * time.Second)
	l.stop()
	caught, entries := waitCaughtUp(t, ks, 3, 3*time.Minute)
	dc := w.converge(t, dsn, time.Minute, a, b)

	all := l.all()
	r.Load = l.held() + ", 2 gateways"
	r.Failed = all.failures()
	r.Stale = fmt.Sprint(all.Stale)
	r.DataLost = dc.String()
	r.Recover = fmt.Sprintf("node caught up %.1f s after it answered again", caught.Seconds())
	r.note("node3 down %.0f s (SIGKILL, then start-node.sh: %.0f s until it answered CQL and its peers saw it)", back.Sub(killed).Seconds(), back.Sub(killed).Seconds()-phase(15*time.Second).Seconds())
	for _, c := range []string{"hot reads", "misses", "writes"} {
		tl := l.get(c)
		r.note("%s: %d sent, %d failed, p50 %v, p99 %v, max %v", c, tl.Sent, tl.Failed, tl.Pct(50).Round(time.Millisecond), tl.Pct(99).Round(time.Millisecond), tl.Max.Round(time.Millisecond))
	}
	r.note("catch-up: node3, read alone at ONE, holds all %d cache entries at the quorum's versions", entries)
	assert.Zero(t, all.Failed, "failed requests: %s", all.failures())
	assert.Zero(t, all.Overrun, "the load generator fell behind")
}

// Two nodes lost: no quorum. What is in memory is served; what needs the
// store (a miss, a write's refresh) fails fast with 503 UNAVAILABLE, never
// hangs; then the third node goes too, and a gateway started with the whole
// cluster down says so (/readyz 503, a log line) and serves once it is back.
// Nothing needs a hand when the nodes return.
func TestCassandraQuorumLost(t *testing.T) {
	r2 := scenario(t, 20, "Two Cassandra nodes SIGKILLed", "hot products served from memory (0 failed); misses and writes never hang: answered within the request timeout, computed from PostgreSQL when the store fails, else 503 UNAVAILABLE; full recovery when the nodes return, no manual step")
	r3 := scenario(t, 30, "All of Cassandra down: while running, and at gateway start", "running gateways as above; a gateway started meanwhile stays up, /readyz 503 with a clear log line, serves once Cassandra is back")
	needCassandra(t)
	restoreCluster(t)
	dsn := database(t)
	ks := keyspaceName(t)
	a := startGateway(t, "a", gatewayConfig{keyspace: ks, postgres: dsn})
	b := startGateway(t, "b", gatewayConfig{keyspace: ks, postgres: dsn})
	w := newWrites(uniqueName(t))
	l := startLoad(hotStream(100, a, b), missStream(2, a, b), w.stream(5, a))
	flushSchema(t) // every node is killed below
	hold(5 * time.Second)

	l.setPhase("two down")
	killNodes(t, 2, 3)
	twoDown := time.Now()
	hold(20 * time.Second)

	l.setPhase("all down")
	killNodes(t, 1)
	allDown := time.Now()
	c := startGateway(t, "c", gatewayConfig{keyspace: ks, postgres: dsn, noWait: true})
	require.Eventually(t, func() bool {
		require.True(t, c.alive(), "gateway c exited with Cassandra down")
		return c.readyStatus() == 503
	}, time.Minute, 100*time.Millisecond, "gateway c: /readyz 503")
	clear := regexp.MustCompile(`(?i)level=(WARN|ERROR).*cassandra`)
	require.Eventually(t, func() bool { return len(c.logged(clear)) > 0 }, time.Minute, 100*time.Millisecond,
		"gateway c logs a warning or error naming Cassandra")
	hold(10 * time.Second)
	assert.True(t, c.alive(), "gateway c still runs")
	assert.Equal(t, 503, c.readyStatus(), "gateway c: /readyz while Cassandra is down")
	logLine := c.logged(clear)[0]

	// All three at once, as an operator brings a cluster back (one by one
	// cost this 2-core machine over 4 minutes under the load).
	l.setPhase("restarting")
	restart := time.Now()
	startNodes(t, 1, 2, 3)
	back := time.Now()
	l.setPhase("after")
	c.waitReady(3 * time.Minute)
	cReady := time.Since(back)
	storeBack, storeQuiet := waitStoreQuiet(t, phase(10*time.Second), 3*time.Minute, a, b, c)
	lastFail := waitQuiet(t, l, "after", phase(10*time.Second), 3*time.Minute)
	l.stop()
	// c serves: a product it never held, and a write.
	_, err := c.fetch("author_stats/7")
	require.NoError(t, err, "gateway c serves a miss once Cassandra is back")
	dc := w.converge(t, dsn, 2*time.Minute, a, b, c)

	for _, ph := range []string{"two down", "all down"} {
		hot := l.get("hot reads", ph)
		assert.Zero(t, hot.Failed, "%s: hot reads failed: %s", ph, hot.failures())
		for _, cl := range []string{"misses", "writes"} {
			tl := l.get(cl, ph)
			for st := range tl.Statuses {
				assert.Equal(t, "503 UNAVAILABLE", st, "%s: %s fail with 503 UNAVAILABLE", ph, cl)
			}
			assert.Less(t, tl.Max, requestTimeout, "%s: %s answered within the request timeout", ph, cl)
		}
	}

	recover := time.Duration(0)
	if !lastFail.IsZero() {
		recover = lastFail.Sub(back)
	}
	fill := func(r *row, phases ...string) {
		all := l.all(phases...)
		r.Load = l.held() + ", 2 gateways"
		r.Failed = fmt.Sprintf("hot reads %s; misses %s; writes %s", l.get("hot reads", phases...).failures(), l.get("misses", phases...).failures(), l.get("writes", phases...).failures())
		r.Stale = fmt.Sprint(all.Stale)
		r.DataLost = dc.String()
		r.Recover = fmt.Sprintf("%.1f s after the 3 nodes answered (last failed request)", max(0, recover.Seconds()))
		for _, ph := range phases {
			for _, cl := range []string{"hot reads", "misses", "writes"} {
				tl := l.get(cl, ph)
				r.note("%s, %s: %d sent, %d failed, p50 %v, p99 %v, max %v", ph, cl, tl.Sent, tl.Failed, tl.Pct(50).Round(time.Millisecond), tl.Pct(99).Round(time.Millisecond), tl.Max.Round(time.Millisecond))
			}
		}
		r.note("writes refused while the store was down whose row Postgres holds anyway: %d of %d (the INSERT ran, the products' refresh failed); the products caught up with them after recovery (%.1f s)", len(dc.halfWritten), dc.failed, dc.took.Seconds())
	}
	fill(r2, "two down")
	r2.note("two nodes down for %.0f s, then the third too", allDown.Sub(twoDown).Seconds())
	fill(r3, "all down")
	r3.note("all three down %.0f s; restarting them, at once, took %.0f s until each answered CQL and saw the others", back.Sub(allDown).Seconds(), back.Sub(restart).Seconds())
	for _, r := range []*row{r2, r3} {
		if !storeQuiet {
			r.note("store calls of gateways a, b and c still failed now and then 3 min after the nodes answered (kck_store_errors_total never flat for 10 s)")
			continue
		}
		r.Recover += fmt.Sprintf("; store calls pass again %.1f s after", storeBack.Seconds())
		r.note("store calls of gateways a, b and c: the last failure %.1f s after the 3 nodes answered (kck_store_errors_total flat for 10 s after)", storeBack.Seconds())
	}
	r3.note("gateway c, started with the cluster down: /readyz 503 while down, 200 %.1f s after the nodes were back; its log: `%s`", cReady.Seconds(), strings.ReplaceAll(logLine, "`", "'"))
	r3.Recover = fmt.Sprintf("%s; gateway c ready %.1f s after", r3.Recover, cReady.Seconds())
}
