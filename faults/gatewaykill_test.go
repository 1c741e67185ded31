//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/queue"
)

// hotStreamOn is hotStream over a set of gateways that the test may change
// while the load runs (to take a gateway out before it is killed).
func hotStreamOn(rate float64, gws *atomic.Pointer[[]*gateway]) stream {
	return stream{class: "hot reads", rate: rate, next: func(seq int64) call {
		set := *gws.Load()
		return call{gw: set[seq%int64(len(set))], path: fmt.Sprintf("/fetch?key=title_list/%d", 1+rand.IntN(authors))}
	}}
}

// A gateway SIGKILLed while it refreshes the keys it claimed from the
// shared queue and while it holds one key's compute lease (a miss in
// flight): its claims and its lease die with it only when they run out.
// Then the survivors claim and refresh every queued key once, and a reader
// waiting on the leased key gets its value from a survivor. The read load
// on the survivors never fails. (e2e's TestGatewayKilledMidRefresh is the
// fast form of the queue half, without load.)
func TestGatewayKilledMidRefreshAndLease(t *testing.T) {
	// Longer than e2e's 4 s: on a busy machine a 1.5 s run plus its Cassandra
	// calls can outlast a short lease, and the key is then refreshed twice.
	const lease = 10 * time.Second
	r := scenario(t, 70, "A gateway SIGKILLed mid-refresh and mid-lease",
		fmt.Sprintf("survivors' reads 0 failed; every queued key refreshed exactly once by the survivors after the %v queue lease; the key whose compute lease the dead gateway held computed by a survivor after the lease and served", lease))
	dsn := database(t)
	ks := keyspaceName(t)
	// Two products of 1.5 s each: slow is refreshed through the queue, slowmiss
	// is read once on the victim (its compute lease), so the counters of
	// one never move with the other.
	dir := sqlDir(t, map[string]string{
		"slow.sql":     "-- kck:product slow(n int)\n-- kck:auth public\n-- kck:result value\nSELECT :n::int AS n FROM pg_sleep(1.5)\n",
		"slowmiss.sql": "-- kck:product slowmiss(n int)\n-- kck:auth public\n-- kck:result value\nSELECT :n::int AS n FROM pg_sleep(1.5)\n",
	})
	env := []string{"KCK_QUEUE_LEASE=" + lease.String(), "KCK_COMPUTE_LEASE=" + lease.String(), "KCK_PRIMER_TIMEOUT=" + lease.String()}
	gws := []*gateway{
		startGateway(t, "a", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir, env: env}),
		startGateway(t, "b", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir, env: env}),
		startGateway(t, "c", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir, env: env}),
	}
	var readers atomic.Pointer[[]*gateway]
	readers.Store(&gws)
	l := startLoad(hotStreamOn(100, &readers))
	defer l.stop()
	time.Sleep(3 * time.Second)

	store, err := cassandra.Open(context.Background(), cassandra.Config{Hosts: suite.cassHosts, Keyspace: ks, Consistency: "QUORUM"})
	require.NoError(t, err)
	defer store.Close()

	keys := make([]string, 12)
	for i := range keys {
		keys[i] = fmt.Sprintf("slow/%d", i+1)
	}
	l.setPhase("victim refreshing")
	out, err := exec.Command(suite.binary, append([]string{"refresh", "--queue", "--store", "cassandra",
		"--cassandra-hosts", strings.Join(suite.cassHosts, ","), "--cassandra-keyspace", ks,
		"--postgres-url", dsn, "--sql-dir", dir}, keys...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	queued := time.Now()

	// The first gateway to drain claims the whole batch (its claim size is
	// above 12) and refreshes 4 at a time, 1.5 s each: it is the victim as
	// soon as its first run starts.
	victim := -1
	require.Eventually(t, func() bool {
		for i, g := range gws {
			if g.metric(`kck_primer_runs_total{product="slow"}`) > 0 {
				victim = i
				return true
			}
		}
		return false
	}, 2*time.Minute, 5*time.Millisecond, "a gateway starts refreshing the queued keys")
	v := gws[victim]
	survivors := make([]*gateway, 0, 2)
	for i, g := range gws {
		if i != victim {
			survivors = append(survivors, g)
		}
	}
	readers.Store(&survivors)

	// A miss on the victim: it takes slowmiss/1's compute lease and runs the
	// primer; the run counter moves once the lease is held.
	const leased = "slowmiss/1"
	go func() { _, _, _ = v.get("/fetch?key=" + leased) }() // its answer dies with the victim
	require.Eventually(t, func() bool { return v.metric(`kck_primer_runs_total{product="slowmiss"}`) > 0 },
		30*time.Second, 5*time.Millisecond, "the victim computes %s under its lease", leased)

	l.setPhase("after the kill")
	v.kill()
	killed := time.Now()
	storedByVictim := 0
	for _, k := range keys {
		if _, err := store.Get(context.Background(), k); err == nil {
			storedByVictim++
		}
	}
	_, err = store.Get(context.Background(), leased)
	require.ErrorIs(t, err, cache.ErrNotFound, "the victim was killed before it stored %s", leased)
	require.Less(t, storedByVictim, len(keys), "the kill landed while the victim refreshed its claims")

	// A reader on a survivor asks for the leased key at once: it waits for
	// the dead gateway's lease to run out, then a survivor computes it.
	type answer struct {
		p    product
		err  error
		took time.Duration
	}
	waiting := make(chan answer, 1)
	go func() {
		t0 := time.Now()
		p, err := survivors[0].fetch(leased)
		waiting <- answer{p, err, time.Since(t0)}
	}()

	// Its flight waits out the dead gateway's lease, then runs the primer
	// (the flight is bounded by the lease plus the primer timeout): it gets
	// its value, not an error.
	a := <-waiting
	require.NoError(t, a.err, "the reader waiting on the dead gateway's lease gets its value")

	// Recovered: every queued key and the leased one stored.
	q, err := store.Queue(queue.Config{})
	require.NoError(t, err)
	var lastStored time.Duration
	require.Eventually(t, func() bool {
		for _, k := range append(keys, leased) {
			if _, err := store.Get(context.Background(), k); err != nil {
				return false
			}
		}
		lastStored = time.Since(killed)
		st, err := q.Stats(context.Background())
		return err == nil && st.Depth == 0
	}, lease+2*time.Minute, 50*time.Millisecond, "every queued key and %s stored, the queue drained", leased)
	for _, k := range keys {
		e, err := store.Get(context.Background(), k)
		require.NoError(t, err)
		assert.JSONEq(t, strings.TrimPrefix(k, "slow/"), string(e.Value), k)
	}
	l.setPhase("recovered")
	time.Sleep(3 * time.Second)
	l.stop()

	var refreshed, leasedRuns float64
	for _, g := range survivors {
		refreshed += g.metric(`kck_queue_refreshes_total{outcome="refreshed",product="slow"}`)
		leasedRuns += g.metric(`kck_primer_runs_total{product="slowmiss"}`)
	}
	reads := l.get("hot reads")
	after := l.get("hot reads", "after the kill", "recovered")

	r.Load = l.held() + ", 3 gateways, then the 2 survivors"
	r.Failed = fmt.Sprintf("survivors' reads %s", reads.failures())
	r.Stale = fmt.Sprint(reads.Stale)
	r.DataLost = fmt.Sprintf("0 of %d queued keys lost (%d refreshed by the survivors, %d stored by the victim before it died)", len(keys), int(refreshed), storedByVictim)
	r.Recover = fmt.Sprintf("%.1f s from the kill to the last key stored (lease %v)", lastStored.Seconds(), lease)
	r.note("victim: gateway %s, killed %.1f s after the 12 keys were queued, with its claims and %s's compute lease held", v.name, killed.Sub(queued).Seconds(), leased)
	r.note("hot reads on the survivors after the kill: %d sent, %d failed, p50 %v, p99 %v, max %v", after.Sent, after.Failed, after.Pct(50).Round(time.Millisecond), after.Pct(99).Round(time.Millisecond), after.Max.Round(time.Millisecond))
	r.note("a reader of %s on gateway %s, sent right after the kill, got its value (version %s) after %.1f s: the survivors waited out the lease, then one computed it (%v runs)", leased, survivors[0].name, a.p.Version, a.took.Seconds(), leasedRuns)

	assert.Zero(t, reads.Failed, "reads failed: %s", reads.failures())
	assert.Zero(t, reads.Overrun, "the load generator fell behind")
	assert.Equal(t, float64(len(keys)-storedByVictim), refreshed, "the survivors refreshed each key the victim did not store, once")
	if a.err == nil {
		assert.JSONEq(t, "1", string(a.p.Value))
	}
	e, err := store.Get(context.Background(), leased)
	require.NoError(t, err)
	assert.JSONEq(t, "1", string(e.Value), "a survivor computed and stored %s", leased)
	assert.Positive(t, leasedRuns, "a survivor computed %s", leased)
}
