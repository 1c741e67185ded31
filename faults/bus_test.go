//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cluster's change bus (issue 24): the NATS server SIGKILLed and
// restarted, one gateway cut off from it, and the gateway that follows the
// source tables SIGKILLed. The three run one after the other on one set of
// three gateways on the suite's Cassandra, under one load (a gateway's
// start warms its products: sharing them saves CI two minutes).

// busAddr is the suite's NATS server, host:port.
func busAddr(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(suite.busURL)
	require.NoError(t, err)
	return u.Host
}

// killBus SIGKILLs the suite's NATS server and waits until it is gone.
func killBus(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(suite.busDir, "nats.pid"))
	require.NoError(t, err, "the NATS server's pid file")
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }, 10*time.Second, 10*time.Millisecond,
		"nats-server %d gone", pid)
}

// startBus starts the suite's NATS server again (scripts/nats/ensure.sh: it
// returns once the server answers).
func startBus(t *testing.T) {
	t.Helper()
	out, err := busScript("ensure.sh")
	require.NoError(t, err)
	require.Equal(t, suite.busURL, strings.TrimSpace(out))
}

// partitionProxy forwards one gateway's connections to the NATS server and
// can cut it off as a network partition does: while cut, what either side
// sends is dropped and nothing is closed (neither side is told; each finds
// out by its own pings), and new connections are held unanswered. heal
// closes every connection that lived through the cut (their bytes were
// lost) and forwards new ones again.
type partitionProxy struct {
	target string
	addr   string
	ln     net.Listener
	cut    atomic.Bool
	wg     sync.WaitGroup

	mu     sync.Mutex
	healed chan struct{} // closed by heal; nil while not cut
	conns  map[net.Conn]struct{}
}

func newPartitionProxy(t *testing.T, target string) *partitionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &partitionProxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(p.close)
	return p
}

// track registers open connections; false once the proxy is closed.
func (p *partitionProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *partitionProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *partitionProxy) serve(c net.Conn) {
	defer c.Close()
	if p.cut.Load() {
		// Nobody answers on the far side: hold it, swallow what comes.
		if !p.track(c) {
			return
		}
		defer p.untrack(c)
		_, _ = io.Copy(io.Discard, c)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, up) {
		return
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	// A side that gave up during the cut does not close the other: across
	// a partition it would not know. heal closes both.
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	if healed != nil {
		<-healed
	}
}

// pipe copies src to dst, dropping what comes while cut.
func (p *partitionProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.cut.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *partitionProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healed = make(chan struct{})
	p.cut.Store(true)
}

func (p *partitionProxy) heal() {
	p.mu.Lock()
	p.cut.Store(false)
	if p.healed != nil {
		close(p.healed)
		p.healed = nil
	}
	var broken []net.Conn
	for c := range p.conns {
		broken = append(broken, c)
	}
	p.mu.Unlock()
	for _, c := range broken {
		c.Close()
	}
}

func (p *partitionProxy) close() {
	p.ln.Close()
	p.heal()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// targets are the gateways a load sends to; a scenario takes one out before
// it kills it, and waits for its requests in flight to be answered, so
// that the load's tallies are the survivors'.
type targets struct {
	mu       sync.Mutex
	live     []*gateway
	inflight map[*gateway]int
}

func newTargets(gws ...*gateway) *targets {
	return &targets{live: slices.Clone(gws), inflight: map[*gateway]int{}}
}

func (ts *targets) take(g *gateway) *gateway {
	if g != nil {
		ts.inflight[g]++
	}
	return g
}

// pick chooses the live gateways in turn.
func (ts *targets) pick(seq int64) *gateway {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.live) == 0 {
		return nil
	}
	return ts.take(ts.live[seq%int64(len(ts.live))])
}

// only chooses g while it is live, else nothing (not sent).
func (ts *targets) only(g *gateway) func(int64) *gateway {
	return func(int64) *gateway {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if !slices.Contains(ts.live, g) {
			return nil
		}
		return ts.take(g)
	}
}

// track counts s's answers off the requests in flight.
func (ts *targets) track(s stream) stream {
	inner := s.done
	s.done = func(seq int64, c call, status int, body []byte) {
		ts.mu.Lock()
		ts.inflight[c.gw]--
		ts.mu.Unlock()
		if inner != nil {
			inner(seq, c, status, body)
		}
	}
	return s
}

// gateways are the live ones.
func (ts *targets) gateways() []*gateway {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.live)
}

// remove takes g out of the load and waits until its requests in flight
// were answered.
func (ts *targets) remove(t *testing.T, g *gateway) {
	t.Helper()
	ts.mu.Lock()
	ts.live = slices.DeleteFunc(ts.live, func(x *gateway) bool { return x == g })
	ts.mu.Unlock()
	require.Eventually(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.inflight[g] == 0
	}, requestTimeout, 5*time.Millisecond, "%s's requests in flight answered", g.name)
}

// hotOn reads the warmed title_list keys on one gateway, a class of its
// own ("hot reads <name>"), so that stale flags are told apart by gateway.
func hotOn(rate float64, g *gateway, ts *targets) stream {
	pick := ts.only(g)
	return ts.track(stream{class: "hot reads " + g.name, rate: rate, next: func(seq int64) call {
		return call{gw: pick(seq), path: fmt.Sprintf("/fetch?key=title_list/%d", 1+rand.IntN(authors))}
	}})
}

// changedKeys are the keys whose stored version moved between two reads of
// the store, with their later version.
func changedKeys(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if before[k] != v {
			out[k] = v
		}
	}
	return out
}

// waitConverged waits until every gateway serves each key of want at its
// version or a newer one, unflagged, and returns how long it took.
func waitConverged(t *testing.T, want map[string]int64, within time.Duration, gws ...*gateway) time.Duration {
	t.Helper()
	t0 := time.Now()
	done := map[string]bool{} // gateway, key
	logged := t0
	for {
		var (
			last    string
			samples []string
		)
		behind := 0
		for _, g := range gws {
			for k, v := range want {
				id := g.name + " " + k
				if done[id] {
					continue
				}
				p, err := g.fetch(k)
				switch {
				case err != nil:
					last = fmt.Sprintf("%s: %s: %v", g.name, k, err)
				case p.Stale:
					last = fmt.Sprintf("%s serves %s flagged stale", g.name, k)
				case version(p) < uint64(v):
					last = fmt.Sprintf("%s serves %s at version %d (computed %s), the store held %d (%s)", g.name, k, version(p),
						time.UnixMicro(int64(version(p))).Format("15:04:05.000"), v, time.UnixMicro(v).Format("15:04:05.000"))
				default:
					done[id] = true
					continue
				}
				behind++
				if len(samples) < 5 {
					samples = append(samples, last)
				}
			}
		}
		if behind == 0 {
			return time.Since(t0)
		}
		if time.Since(logged) > 5*time.Second {
			// What lags, for the log: a key served at an old version
			// long after the tier was dropped is a defect to look at.
			logged = time.Now()
			t.Logf("after %.0f s, %d (gateway, key) pairs behind, such as: %s", time.Since(t0).Seconds(), behind, strings.Join(samples, "; "))
		}
		require.Less(t, time.Since(t0), within, "not converged: %d (gateway, key) pairs behind, such as: %s", behind, last)
		time.Sleep(50 * time.Millisecond)
	}
}

// perGateway reads a series on each gateway.
func perGateway(t *testing.T, series string, gws ...*gateway) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, g := range gws {
		out[g.name] = g.metric(series)
	}
	return out
}

// waitMoved waits until series moved past before on every gateway; returns
// how long it took.
func waitMoved(t *testing.T, series string, before map[string]float64, within time.Duration, gws ...*gateway) time.Duration {
	t.Helper()
	t0 := time.Now()
	require.Eventually(t, func() bool {
		for _, g := range gws {
			if g.metric(series) <= before[g.name] {
				return false
			}
		}
		return true
	}, within, 10*time.Millisecond, "%s moved on every gateway", series)
	return time.Since(t0)
}

// busFixture is what the bus scenarios share.
type busFixture struct {
	dsn, ks   string
	lease     time.Duration
	gws       []*gateway                   // a, b and c
	proxies   map[*gateway]*partitionProxy // each one's way to the bus
	ts        *targets
	w, src    *writes
	l         *load
	hotPer    float64
	phaseFrom map[string]time.Time
}

func (fx *busFixture) phase(p string) {
	fx.l.setPhase(p)
	fx.phaseFrom[p] = time.Now()
}

// hotClasses are the hot-read classes of gws.
func hotClasses(gws ...*gateway) []string {
	out := make([]string, len(gws))
	for i, g := range gws {
		out[i] = "hot reads " + g.name
	}
	return out
}

// sumClasses adds the tallies of classes over phases.
func (fx *busFixture) sumClasses(classes []string, phases ...string) *tally {
	out := &tally{}
	for _, c := range classes {
		out.add(fx.l.get(c, phases...))
	}
	return out
}

// rates spells the load's rates: "99 hot reads/s + 2 misses/s + ...",
// the per-gateway hot reads summed.
func (fx *busFixture) rates() string {
	hot := 0.0
	var parts []string
	for _, s := range fx.l.streams {
		if strings.HasPrefix(s.class, "hot reads ") {
			hot += s.rate
			continue
		}
		parts = append(parts, fmt.Sprintf("%g %s/s", s.rate, s.class))
	}
	return strings.Join(append([]string{fmt.Sprintf("%g hot reads/s", hot)}, parts...), " + ")
}

func (fx *busFixture) noteTallies(r *row, phases ...string) {
	classes := append(hotClasses(fx.gws...), "misses", "writes", "source changes")
	for _, ph := range phases {
		for _, c := range classes {
			tl := fx.l.get(c, ph)
			if tl.Sent == 0 {
				continue
			}
			r.note("%s, %s: %d sent, %s failed, %d stale, p50 %v, p99 %v, max %v", ph, c, tl.Sent, tl.failures(), tl.Stale,
				tl.Pct(50).Round(time.Millisecond), tl.Pct(99).Round(time.Millisecond), tl.Max.Round(time.Millisecond))
		}
	}
}

// TestChangeBus runs the bus scenarios on one cluster of three gateways,
// each reaching NATS through a proxy of its own that can cut it off. The
// follow lease is 4 s (a takeover is measured against it); compute lease
// and primer timeout are 5 s each, which bounds how long the follower waits
// for a refresh it handed to a gateway that never answers (see
// GatewayCutOff).
func TestChangeBus(t *testing.T) {
	fx := &busFixture{dsn: database(t), ks: keyspaceName(t), lease: 4 * time.Second, phaseFrom: map[string]time.Time{},
		proxies: map[*gateway]*partitionProxy{}}
	env := []string{"KCK_FOLLOW_LEASE=" + fx.lease.String(), "KCK_COMPUTE_LEASE=5s", "KCK_PRIMER_TIMEOUT=5s"}
	start := func(name string, noWait bool) *gateway {
		p := newPartitionProxy(t, busAddr(t))
		g := startGateway(t, name, gatewayConfig{keyspace: fx.ks, postgres: fx.dsn, noWait: noWait,
			env: append(slices.Clone(env), "KCK_BUS_URL=nats://"+p.addr)})
		fx.proxies[g] = p
		return g
	}
	// a first: it creates the keyspace (concurrent schema changes from
	// several gateways are a Cassandra hazard), then b and c start together.
	a := start("a", false)
	b, c := start("b", true), start("c", true)
	b.waitReady(3 * time.Minute)
	c.waitReady(3 * time.Minute)
	fx.gws = []*gateway{a, b, c}
	for _, g := range fx.gws {
		direct, proxied := tcpPeers(t, g.pid(), []string{busAddr(t)}, []string{fx.proxies[g].addr})
		require.Zero(t, direct, "%s: connections straight to NATS", g.name)
		require.NotZero(t, proxied, "%s: its bus connection through its proxy", g.name)
	}

	pool, err := pgxpool.New(context.Background(), fx.dsn)
	require.NoError(t, err)
	defer pool.Close()
	prefix := uniqueName(t)
	fx.w, fx.src = newWrites(prefix), newWrites(prefix+"src")
	fx.ts = newTargets(fx.gws...)
	fx.hotPer = 34
	fx.l = startLoad(hotOn(fx.hotPer, a, fx.ts), hotOn(fx.hotPer, b, fx.ts), hotOn(fx.hotPer, c, fx.ts),
		fx.ts.track(missStreamTo(2, fx.ts.pick)), fx.ts.track(fx.w.streamTo(5, fx.ts.pick)), fx.src.sourceStream(2, pool))
	defer fx.l.stop()
	fx.phase("before")
	hold(6 * time.Second)

	t.Run("BusKilled", fx.busKilled)
	t.Run("GatewayCutOff", fx.cutOff)
	t.Run("FollowerKilled", fx.followerKilled)

	// Once the load stops, the survivors serve exactly what Postgres holds.
	fx.l.stop()
	live := fx.ts.gateways()
	dw := fx.w.converge(t, fx.dsn, 2*time.Minute, live...)
	ds := fx.src.converge(t, fx.dsn, 2*time.Minute, live...)
	t.Logf("after the three scenarios: %s, source changes %s; load %s", dw, ds, fx.l.held())
	assert.Zero(t, fx.l.all().Overrun, "the load generator fell behind")
}

// The NATS server SIGKILLed and, 10 s later, started again: the gateways
// serve on (their in-process values flagged stale, misses and writes go to
// the store and Postgres, which are up), and once it is back each drops its
// in-process tier and so converges on the store's newest versions.
func (fx *busFixture) busKilled(t *testing.T) {
	r := scenario(t, 62, "The change bus (NATS) SIGKILLed and restarted",
		"3 gateways on Cassandra: reads 0 failed; in-process values flagged stale while cut off; once it is back every gateway serves every key changed meanwhile at the store's version or newer; nothing acknowledged lost")
	t.Cleanup(func() { _, _ = busScript("ensure.sh") }) // the next scenarios need it
	gws := fx.gws
	lost0 := perGateway(t, "kck_bus_disconnects_total", gws...)
	resync0 := perGateway(t, "kck_bus_resyncs_total", gws...)
	v0, err := versions(fx.ks, 0)
	require.NoError(t, err)

	fx.phase("bus down")
	killBus(t)
	killed := time.Now()
	t.Logf("NATS killed at %s", killed.Format("15:04:05.000"))
	noticed := waitMoved(t, "kck_bus_disconnects_total", lost0, 30*time.Second, gws...)
	time.Sleep(time.Until(killed.Add(phase(10 * time.Second))))
	v1, err := versions(fx.ks, 0)
	require.NoError(t, err)

	fx.phase("bus back")
	startBus(t)
	back := time.Now()
	t.Logf("NATS answers again at %s", back.Format("15:04:05.000"))
	resynced := waitMoved(t, "kck_bus_resyncs_total", resync0, time.Minute, gws...)
	want := changedKeys(v0, v1)
	require.NotEmpty(t, want, "keys changed while the bus was down")
	converged := time.Since(back)
	converged += waitConverged(t, want, 2*time.Minute, gws...)
	fx.phase("after bus")
	hold(4 * time.Second)
	dw := fx.w.reflected(t, fx.dsn, 2*time.Minute, gws...)
	ds := fx.src.reflected(t, fx.dsn, 2*time.Minute, gws...)

	hot := hotClasses(gws...)
	down := fx.sumClasses(hot, "bus down")
	after := fx.sumClasses(hot, "after bus")
	for _, c := range append(hot, "misses") {
		tl := fx.l.get(c, "bus down", "bus back", "after bus")
		assert.Zero(t, tl.Failed, "%s failed: %s", c, tl.failures())
	}
	for _, c := range []string{"writes", "source changes"} {
		tl := fx.l.get(c, "bus down", "bus back", "after bus")
		assert.Zero(t, tl.Failed, "%s failed: %s (the store and Postgres are up)", c, tl.failures())
	}
	for _, g := range gws {
		tl := fx.l.get("hot reads "+g.name, "bus down")
		assert.GreaterOrEqual(t, float64(tl.Stale), 0.9*float64(tl.Sent), "%s: hot reads flagged stale while the bus is down: %d of %d", g.name, tl.Stale, tl.Sent)
	}
	assert.Zero(t, after.Stale, "hot reads flagged stale once every gateway converged")

	r.Load = fmt.Sprintf("%s, 3 gateways; bus down %.0f s", fx.rates(), back.Sub(killed).Seconds())
	r.Failed = fmt.Sprintf("hot reads %s; misses %s; writes %s; source changes %s", fx.sumClasses(hot, "bus down", "bus back", "after bus").failures(),
		fx.l.get("misses", "bus down", "bus back", "after bus").failures(), fx.l.get("writes", "bus down", "bus back", "after bus").failures(),
		fx.l.get("source changes", "bus down", "bus back", "after bus").failures())
	r.Stale = fmt.Sprintf("%d of %d hot reads flagged stale while the bus was down (%.1f %%); %d once converged", down.Stale, down.Sent, 100*float64(down.Stale)/float64(max(1, down.Sent)), after.Stale)
	r.DataLost = fmt.Sprintf("0 of %d acknowledged writes and 0 of %d source changes lost", dw.acked, ds.acked)
	r.Recover = fmt.Sprintf("every gateway dropped its in-process tier %.2f s after NATS answered again; every key changed while it was down (%d) served at the store's version or newer by every gateway %.2f s after it answered",
		resynced.Seconds(), len(want), converged.Seconds())
	r.note("NATS SIGKILLed; every gateway counted the disconnection (kck_bus_disconnects_total) within %v; restarted %.1f s after the kill (scripts/nats/ensure.sh; %.2f s until it answered)",
		noticed.Round(time.Millisecond), fx.phaseFrom["bus back"].Sub(killed).Seconds(), back.Sub(fx.phaseFrom["bus back"]).Seconds())
	r.note("keys whose stored version moved while the bus was down: %d, read from Cassandra at QUORUM at the kill and at the restart; each then fetched from every gateway until served at that version or newer, unflagged", len(want))
	r.note("writes acknowledged by then: %d, all in every gateway's title_list %.1f s after convergence began; source rows inserted straight into Postgres (the follower's path): %d, all reflected", dw.acked, dw.took.Seconds(), ds.acked)
	fx.noteTallies(r, "bus down", "bus back", "after bus")
}

// One gateway (one that does not follow the source tables: see the note)
// cut off from the bus by a partition (its proxy drops every byte, closes
// nothing): it finds out by its pings, then serves flagged stale; the
// others go on unflagged; once healed, it reconnects, drops its tier and
// converges, and what it announced into the dead connection shows the
// others a gap in its sequence, so they drop theirs too.
func (fx *busFixture) cutOff(t *testing.T) {
	r := scenario(t, 64, "One gateway cut off from the bus (a partition)",
		"the cut-off gateway (not the follower) serves on (0 failed), flagged stale once its pings fail (within 3 ping intervals, 15 s); the others unaffected (0 failed, 0 stale, no disconnection); after healing every gateway serves every key changed meanwhile at the store's version or newer; nothing acknowledged lost")
	gws := fx.gws
	const leader = `kck_leader{job="follow/source"}`
	var x *gateway
	var others []*gateway
	for _, g := range gws {
		if x == nil && g.metric(leader) == 0 {
			x = g
			continue
		}
		others = append(others, g)
	}
	require.NotNil(t, x, "a gateway that does not follow")
	proxy := fx.proxies[x]
	t.Cleanup(proxy.heal)
	lost0 := perGateway(t, "kck_bus_disconnects_total", gws...)
	resync0 := perGateway(t, "kck_bus_resyncs_total", gws...)
	local0 := 0.0
	for _, g := range gws {
		local0 += g.metric(`kck_dispatches_total{outcome="local"}`)
	}
	v0, err := versions(fx.ks, 0)
	require.NoError(t, err)

	fx.phase("cut, unnoticed")
	proxy.partition()
	cut := time.Now()
	noticed := waitMoved(t, "kck_bus_disconnects_total", lost0, time.Minute, x)
	fx.phase("cut")
	hold(10 * time.Second)
	v1, err := versions(fx.ks, 0)
	require.NoError(t, err)
	othersLost := perGateway(t, "kck_bus_disconnects_total", others...)
	var leaders []string
	for _, g := range gws {
		if g.metric(leader) == 1 {
			leaders = append(leaders, g.name)
		}
	}

	fx.phase("healed")
	proxy.heal()
	healed := time.Now()
	back := waitMoved(t, "kck_bus_resyncs_total", resync0, time.Minute, x)
	want := changedKeys(v0, v1)
	require.NotEmpty(t, want, "keys changed while %s was cut off", x.name)
	converged := time.Since(healed)
	converged += waitConverged(t, want, 2*time.Minute, gws...)
	fx.phase("after heal")
	hold(4 * time.Second)
	dw := fx.w.reflected(t, fx.dsn, 2*time.Minute, gws...)
	ds := fx.src.reflected(t, fx.dsn, 2*time.Minute, gws...)
	resync1 := perGateway(t, "kck_bus_resyncs_total", gws...)
	local := -local0
	for _, g := range gws {
		local += g.metric(`kck_dispatches_total{outcome="local"}`)
	}

	cutPhases := []string{"cut, unnoticed", "cut", "healed", "after heal"}
	for _, cl := range append(hotClasses(gws...), "misses", "writes", "source changes") {
		tl := fx.l.get(cl, cutPhases...)
		assert.Zero(t, tl.Failed, "%s failed: %s", cl, tl.failures())
	}
	xCut := fx.l.get("hot reads "+x.name, "cut")
	assert.GreaterOrEqual(t, float64(xCut.Stale), 0.9*float64(xCut.Sent), "%s's hot reads flagged stale once it noticed: %d of %d", x.name, xCut.Stale, xCut.Sent)
	othersCut := fx.sumClasses(hotClasses(others...), "cut, unnoticed", "cut")
	assert.Zero(t, othersCut.Stale, "the others' hot reads flagged stale while %s is cut off", x.name)
	for _, g := range others {
		assert.Equal(t, lost0[g.name], othersLost[g.name], "%s lost its bus connection while %s was cut off", g.name, x.name)
	}
	assert.NotContains(t, leaders, x.name, "the cut-off gateway did not become the follower")
	assert.LessOrEqual(t, noticed, 3*5*time.Second+2*time.Second, "%s notices the partition within 3 ping intervals", x.name)
	after := fx.sumClasses(hotClasses(gws...), "after heal")
	assert.Zero(t, after.Stale, "hot reads flagged stale once every gateway converged")

	unnoticed := fx.l.get("hot reads "+x.name, "cut, unnoticed")
	names := func(gs []*gateway) string {
		n := make([]string, len(gs))
		for i, g := range gs {
			n[i] = g.name
		}
		return strings.Join(n, " and ")
	}
	r.Load = fmt.Sprintf("%s, 3 gateways; %s cut off %.0f s", fx.rates(), x.name, healed.Sub(cut).Seconds())
	r.Failed = fmt.Sprintf("cut-off gateway's reads %s; the others' reads %s; misses %s; writes %s; source changes %s",
		fx.l.get("hot reads "+x.name, cutPhases...).failures(), fx.sumClasses(hotClasses(others...), cutPhases...).failures(),
		fx.l.get("misses", cutPhases...).failures(), fx.l.get("writes", cutPhases...).failures(), fx.l.get("source changes", cutPhases...).failures())
	r.Stale = fmt.Sprintf("cut-off gateway: %d of %d hot reads once it noticed (%.1f s after the cut), %d of %d before; the others: %d; %d once converged",
		xCut.Stale, xCut.Sent, noticed.Seconds(), unnoticed.Stale, unnoticed.Sent, othersCut.Stale, after.Stale)
	r.DataLost = fmt.Sprintf("0 of %d acknowledged writes and 0 of %d source changes lost", dw.acked, ds.acked)
	r.Recover = fmt.Sprintf("the cut-off gateway dropped its tier %.2f s after the partition healed; every key changed meanwhile (%d) served at the store's version or newer by every gateway %.2f s after",
		back.Seconds(), len(want), converged.Seconds())
	r.note("gateway %s cut off; %s follows the source tables. The partition: the TCP proxy between %s and NATS drops every byte both ways and closes nothing, and holds new connections unanswered; %s notices when its third ping is due unanswered (ping interval 5 s, 2 outstanding): %.1f s here, its values unflagged until then (%d of its reads in that window)",
		x.name, strings.Join(leaders, ", "), x.name, x.name, noticed.Seconds(), unnoticed.Sent)
	r.note("in-process tiers dropped after healing (kck_bus_resyncs_total): a %+g, b %+g, c %+g; %s drop theirs when %s's first announcement after the partition shows a gap in its sequence (what it published into the dead connection was lost)",
		resync1["a"]-resync0["a"], resync1["b"]-resync0["b"], resync1["c"]-resync0["c"], names(others), x.name)
	r.note("refreshes the follower did itself, nobody having answered its assignment (kck_dispatches_total{outcome=\"local\"}): %g; NATS keeps the cut-off gateway's dead subscription in the refresh queue group during the partition, so an assignment it picks for it waits out the assignment's bound (compute lease + primer timeout: 5 s + 5 s here, 30 s + 30 s by default) before the follower refreshes the key itself", local)
	r.note("not covered: the follower itself cut off. It keeps its lease (the store is reachable), refreshes every changed key itself and stores it, but the other gateways hear of none of it for as long as the partition lasts and serve their in-process values unflagged until it heals (from the code: its assignments cannot be sent, so it refreshes each key itself; its announcements wait in its client's buffer)")
	fx.noteTallies(r, cutPhases...)
}

// The gateway that follows the source tables' change log SIGKILLed while
// rows change: another takes the lease within its bound and goes on from
// the position, and every row changed before, during and after reaches
// every survivor's products.
func (fx *busFixture) followerKilled(t *testing.T) {
	// The Leader's bound, and the most one look at the lease may take (it
	// is abandoned after lease/3): the store's answer is not in the bound.
	bound := (fx.lease + fx.lease/3).Round(10 * time.Millisecond)
	slack := fx.lease/3 + 200*time.Millisecond // and this test's polling
	r := scenario(t, 72, "The gateway following the source tables SIGKILLed",
		fmt.Sprintf("another gateway follows within lease + lease/3 (%v; plus the store's answer to a look, at most lease/3); no source change lost: every row changed before, during and after the takeover in every survivor's products; survivors' requests 0 failed", bound))
	const leader = `kck_leader{job="follow/source"}`
	var victim *gateway
	require.Eventually(t, func() bool {
		victim = nil
		for _, g := range fx.ts.gateways() {
			if g.metric(leader) == 1 {
				if victim != nil {
					return false
				}
				victim = g
			}
		}
		return victim != nil
	}, time.Minute, 20*time.Millisecond, "one gateway follows")
	fx.ts.remove(t, victim)
	survivors := fx.ts.gateways()
	srcBefore := fx.src.count()

	fx.phase("follower killed")
	victim.kill()
	killed := time.Now()
	var successor *gateway
	require.Eventually(t, func() bool {
		for _, g := range survivors {
			if g.metric(leader) == 1 {
				successor = g
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond, "another gateway follows")
	takeover := time.Since(killed)
	fx.phase("taken over")
	hold(6 * time.Second)
	fx.phase("after takeover")
	dw := fx.w.reflected(t, fx.dsn, 2*time.Minute, survivors...)
	ds := fx.src.reflected(t, fx.dsn, 2*time.Minute, survivors...)

	phases := []string{"follower killed", "taken over", "after takeover"}
	for _, ph := range append([]string{"before"}, phases[:2]...) {
		assert.Positive(t, fx.l.get("source changes", ph).OK, "source rows changed in phase %q", ph)
	}
	var classes []string
	for _, g := range survivors {
		classes = append(classes, "hot reads "+g.name)
	}
	for _, cl := range append(classes, "misses", "writes", "source changes") {
		tl := fx.l.get(cl, phases...)
		assert.Zero(t, tl.Failed, "%s failed: %s", cl, tl.failures())
	}
	assert.LessOrEqual(t, takeover, bound+slack, "another gateway follows within lease + lease/3, plus a look's answer")

	during := fx.l.get("source changes", "follower killed")
	r.Load = fmt.Sprintf("%s, 3 gateways, then the 2 survivors", fx.rates())
	r.Failed = fmt.Sprintf("survivors' reads %s; misses %s; writes %s; source changes %s", fx.sumClasses(classes, phases...).failures(),
		fx.l.get("misses", phases...).failures(), fx.l.get("writes", phases...).failures(), fx.l.get("source changes", phases...).failures())
	r.Stale = fmt.Sprint(fx.sumClasses(classes, phases...).Stale)
	r.DataLost = fmt.Sprintf("0 of %d source changes lost (%d made while nobody followed), 0 of %d acknowledged writes", ds.acked, during.OK, dw.acked)
	r.Recover = fmt.Sprintf("gateway %s followed %.2f s after the kill (lease %v, bound %v); every source change in both survivors' products %.1f s after the takeover phase ended",
		successor.name, takeover.Seconds(), fx.lease, bound, ds.took.Seconds())
	r.note("victim: gateway %s, the follower (kck_leader{job=\"follow/source\"} 1), taken out of the load and SIGKILLed; the survivors look at the lease every lease/3 with a plain read and take it once it ran out", victim.name)
	r.note("source rows inserted straight into Postgres at 2/s: %d before the kill, %d while nobody followed, %d after the takeover; all in every survivor's title_list",
		srcBefore, during.OK, fx.l.get("source changes", "taken over", "after takeover").OK)
	fx.noteTallies(r, phases...)
}
