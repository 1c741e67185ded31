// Package e2e runs several real gateway processes (the kck binary) against a
// real shared store -- a Cassandra cluster with the NATS change bus, and a
// PostgreSQL store with its own LISTEN/NOTIFY bus -- and checks what only
// shows across processes: stampede protection, coherence of the in-process
// tiers, the shared refresh queue, source changes followed once, node loss.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/queue"
)

var binary string

func TestMain(m *testing.M) { os.Exit(gatewaytest.MainWithKCK(m, "e2e", &binary)) }

func repoRoot() string { return gatewaytest.RepoRoot() }

type gateway struct {
	base string
	cmd  *exec.Cmd
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 200}, Timeout: 30 * time.Second}

// shared is a store several gateways share in one test, with how to reach
// it from a gateway, from the kck command and from the test.
type shared struct {
	kind string
	// env are the gateways' KCK_* variables for it (and its bus).
	env []string
	// args are kck's store flags for it (commands beside the gateways).
	args []string
	// open opens it from the test, to look inside.
	open func(t *testing.T) (cache.Store, queue.Store)
}

// cassandraCluster is a fresh keyspace on the Cassandra cluster; its
// gateways share the NATS change bus.
func cassandraCluster(t *testing.T) shared {
	ks := cassandratest.Keyspace(t)
	hosts := strings.Join(ks.Hosts, ",")
	return shared{kind: "cassandra",
		env:  []string{"KCK_STORE=cassandra", "KCK_CASSANDRA_HOSTS=" + hosts, "KCK_CASSANDRA_KEYSPACE=" + ks.Keyspace, "KCK_BUS_URL=" + natstest.URL(t)},
		args: []string{"--store", "cassandra", "--cassandra-hosts", hosts, "--cassandra-keyspace", ks.Keyspace},
		open: func(t *testing.T) (cache.Store, queue.Store) {
			s, err := cassandra.Open(context.Background(), ks)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			q, err := s.Queue(queue.Config{})
			require.NoError(t, err)
			return s, q
		}}
}

// postgresCluster is a fresh schema of a PostgreSQL store; its gateways
// keep coherent over the store's own LISTEN/NOTIFY bus (no NATS).
func postgresCluster(t *testing.T) shared {
	cfg := pgstoretest.Config(t)
	return shared{kind: "postgres",
		env:  []string{"KCK_STORE=postgres", "KCK_STORE_POSTGRES_URL=" + cfg.URL, "KCK_STORE_POSTGRES_SCHEMA=" + cfg.Schema, "KCK_BUS_URL="},
		args: []string{"--store", "postgres", "--store-postgres-url", cfg.URL, "--store-postgres-schema", cfg.Schema},
		open: func(t *testing.T) (cache.Store, queue.Store) {
			s, err := postgres.Open(context.Background(), cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			q, err := s.Queue(queue.Config{})
			require.NoError(t, err)
			return s, q
		}}
}

// onEachStore runs test on a Cassandra cluster and on a PostgreSQL store.
func onEachStore(t *testing.T, test func(t *testing.T, s shared)) {
	for _, c := range []struct {
		name string
		make func(*testing.T) shared
	}{{"cassandra", cassandraCluster}, {"postgres", postgresCluster}} {
		t.Run(c.name, func(t *testing.T) { test(t, c.make(t)) })
	}
}

// startGateways starts n gateway processes on one shared store; env adds
// KCK_* variables (the last value of a variable wins).
func startGateways(t *testing.T, n int, s shared, env ...string) []*gateway {
	t.Helper()
	gws := make([]*gateway, n)
	for i := range gws {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(binary, "serve", "--addr", addr, "--data-dir", t.TempDir(), "--log-level", "warn")
		cmd.Env = append(os.Environ(), s.env...)
		// The Go demo, whatever database make test exports (the last value
		// of a variable wins); cleanup stops them by SIGTERM: no drain
		// delay to wait out.
		cmd.Env = append(cmd.Env, "KCK_POSTGRES_URL=", "KCK_DRAIN_DELAY=0s")
		cmd.Env = append(cmd.Env, env...)
		logs, err := cmd.StderrPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		go func() {
			sc := bufio.NewScanner(logs)
			for sc.Scan() {
				t.Logf("gateway %d: %s", i+1, sc.Text())
			}
		}()
		gws[i] = &gateway{base: "http://" + addr, cmd: cmd}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
	}
	for _, g := range gws {
		gatewaytest.WaitReady(t, client, g.base)
	}
	return gws
}

type fetched struct {
	Key     string          `json:"key"`
	Version string          `json:"version"`
	Value   json.RawMessage `json:"value"`
}

func (g *gateway) fetch(key string) (fetched, error) {
	resp, err := client.Get(g.base + "/fetch?key=" + key)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{}, err
	}
	if resp.StatusCode != 200 {
		return fetched{}, fmt.Errorf("%s: %d %s", key, resp.StatusCode, b)
	}
	var f fetched
	return f, json.Unmarshal(b, &f)
}

func (g *gateway) graphql(t *testing.T, query string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	resp, err := client.Post(g.base+"/graphql", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []any          `json:"errors"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out.Errors)
	return out.Data
}

// metric reads one sample from a gateway's /metrics.
func (g *gateway) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := client.Get(g.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// (a) 1,000 concurrent misses on one key, spread over 3 gateways, run the
// primer exactly once in the whole cluster.
func TestStampedeAcrossGateways(t *testing.T) { onEachStore(t, testStampede) }

func testStampede(t *testing.T, s shared) {
	gws := startGateways(t, 3, s)
	const callers = 1000
	var (
		wg       sync.WaitGroup
		versions sync.Map
		failures atomic.Int64
		start    = make(chan struct{})
	)
	// author_stats is neither warmed nor refreshed on a schedule: every run
	// counted below is one of these misses.
	runs := func() (n float64) {
		for _, g := range gws {
			n += g.metric(t, `kck_primer_runs_total{product="author_stats"}`)
		}
		return n
	}
	before := runs()
	for i := range callers {
		wg.Go(func() {
			<-start
			f, err := gws[i%len(gws)].fetch("author_stats/17")
			if err != nil {
				failures.Add(1)
				t.Log(err)
				return
			}
			versions.Store(f.Version, true)
		})
	}
	close(start)
	wg.Wait()
	require.Zero(t, failures.Load())
	assert.Equal(t, 1.0, runs()-before, "primer runs over the 3 gateways")
	n := 0
	versions.Range(func(any, any) bool { n++; return true })
	assert.Equal(t, 1, n, "every caller got the same version")
}

// (b) When one gateway refreshes or invalidates a key, the others stop
// serving their in-process copy within the stated bound: the change bus
// pushes the new version (with the value) at once. We assert 1 s.
func TestGatewaysStayCoherent(t *testing.T) { onEachStore(t, testCoherent) }

func testCoherent(t *testing.T, s shared) {
	const bound = time.Second
	gws := startGateways(t, 3, s)
	a, others := gws[0], gws[1:]
	key := "author_stats/3"
	first, err := a.fetch(key)
	require.NoError(t, err)
	for _, g := range others {
		f, err := g.fetch(key)
		require.NoError(t, err)
		require.Equal(t, first.Version, f.Version)
	}

	var worst time.Duration
	waitAll := func(what string, ok func(fetched) bool) {
		t0 := time.Now()
		for _, g := range others {
			require.Eventually(t, func() bool {
				f, err := g.fetch(key)
				return err == nil && ok(f)
			}, 5*bound, 5*time.Millisecond, "%s seen by %s", what, g.base)
		}
		lag := time.Since(t0)
		worst = max(worst, lag)
		t.Logf("%s seen by the other gateways after %v", what, lag)
		assert.LessOrEqual(t, lag, bound, what)
	}
	for i := range 5 {
		data := a.graphql(t, `mutation { refresh(key: "`+key+`") { version } }`)
		v := data["refresh"].(map[string]any)["version"].(string)
		waitAll(fmt.Sprintf("refresh %d", i+1), func(f fetched) bool { return f.Version == v })
	}
	before, err := a.fetch(key)
	require.NoError(t, err)
	a.graphql(t, `mutation { invalidate(key: "`+key+`") }`)
	old, _ := strconv.ParseUint(before.Version, 10, 64)
	waitAll("invalidate", func(f fetched) bool {
		v, _ := strconv.ParseUint(f.Version, 10, 64)
		return v > old
	})
	t.Logf("worst lag %v (bound %v)", worst, bound)
	for _, g := range others {
		assert.Positive(t, g.metric(t, `kck_bus_applied_total{outcome="replaced"}`), "the value came with its announcement")
	}
}

// (c) With RF=3 at QUORUM, killing one node of the 3-node cluster during a
// read load loses no reads. Reads go to Cassandra (the store), not to an
// in-process tier.
func TestNodeLossLosesNoReads(t *testing.T) {
	ks := cassandratest.Keyspace(t)
	require.Len(t, ks.Hosts, 3, "needs the 3-node cluster (make test starts it; or make cassandra-up NODES=3)")
	ks.Consistency = "QUORUM"
	ctx := context.Background()
	store, err := cassandra.Open(ctx, ks)
	require.NoError(t, err)
	defer store.Close()
	const keys = 300
	for i := range keys {
		require.NoError(t, store.Put(ctx, cache.Entry{Key: fmt.Sprintf("k/%d", i), Value: []byte(strconv.Itoa(i)),
			Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}))
	}

	var (
		reads, failures atomic.Int64
		stop            = make(chan struct{})
		wg              sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rand.IntN(keys)
				e, err := store.Get(ctx, fmt.Sprintf("k/%d", i))
				if err != nil || string(e.Value) != strconv.Itoa(i) {
					failures.Add(1)
					t.Logf("read k/%d: %v", i, err)
				}
				reads.Add(1)
			}
		})
	}
	script := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "cassandra", name), args...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", name, out)
	}
	time.Sleep(time.Second) // load before the loss
	before := reads.Load()
	script("stop-node.sh", "3", "--kill")
	t.Cleanup(func() { script("start-node.sh", "3") })
	time.Sleep(5 * time.Second) // load during the loss
	close(stop)
	wg.Wait()
	t.Logf("%d reads, %d during the loss, %d failed", reads.Load(), reads.Load()-before, failures.Load())
	assert.Zero(t, failures.Load())
	assert.Greater(t, reads.Load()-before, int64(100), "the load went on")
}

// The refresh queue is the cluster's: keys queued from the command line
// (kck refresh --queue, beside the running gateways) are claimed by the
// gateways' workers, each refreshed once for the cluster, and every gateway
// serves the new values. Warming already put every title list in Cassandra
// at boot, computed once for the three gateways.
func TestQueueSharedByGateways(t *testing.T) { onEachStore(t, testQueueShared) }

func testQueueShared(t *testing.T, s shared) {
	gws := startGateways(t, 3, s)
	sum := func(series string) (n float64) {
		for _, g := range gws {
			n += g.metric(t, series)
		}
		return n
	}
	authors := 300.0
	require.Equal(t, authors, sum(`kck_primer_runs_total{product="title_list"}`), "warming computed each domain member once for the cluster")

	keys := make([]string, 20)
	old := map[string]uint64{}
	for i := range keys {
		keys[i] = fmt.Sprintf("title_list/%d", 100+i)
		f, err := gws[i%3].fetch(keys[i])
		require.NoError(t, err)
		old[keys[i]], err = strconv.ParseUint(f.Version, 10, 64)
		require.NoError(t, err)
	}
	// title_list is refreshed by nothing else (top_authors' minutely
	// refresh goes through the queue too, under its own label).
	refreshed := sum(`kck_queue_refreshes_total{outcome="refreshed",product="title_list"}`)
	cli := exec.Command(binary, append(append(append([]string{"refresh", "--queue"}, s.args...), "--postgres-url="), keys...)...)
	out, err := cli.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "20 keys queued")

	require.Eventually(t, func() bool {
		for _, k := range keys {
			for _, g := range gws {
				f, err := g.fetch(k)
				if err != nil {
					return false
				}
				if v, _ := strconv.ParseUint(f.Version, 10, 64); v <= old[k] {
					return false
				}
			}
		}
		return true
	}, 2*time.Minute, 50*time.Millisecond, "every gateway serves the refreshed values")
	// A worker counts a key once it has marked it done (a Paxos round after
	// the value is stored and served): wait for the count, not just the values.
	var n float64
	require.Eventually(t, func() bool {
		n = sum(`kck_queue_refreshes_total{outcome="refreshed",product="title_list"}`) - refreshed
		return n >= 20
	}, 2*time.Minute, 50*time.Millisecond, "every queued key counted refreshed")
	var claims []string
	for _, g := range gws {
		claims = append(claims, fmt.Sprint(g.metric(t, "kck_queue_claims_total")))
	}
	t.Logf("20 keys queued: %v refreshes, claims per gateway %v", n, claims)
	require.LessOrEqual(t, n, 20.0, "no lease ran out, so no key was refreshed twice")

	cli = exec.Command(binary, append([]string{"queue"}, s.args...)...)
	out, err = cli.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "depth 0")
}

// A gateway process killed (SIGKILL) while it refreshes the keys it claimed
// holds them until its lease runs out; then the other gateways claim and
// refresh every one: nothing queued is lost with the gateway. The product
// is SQL on Postgres that takes 1.5 s, so the kill lands mid-batch.
func TestGatewayKilledMidRefresh(t *testing.T) { onEachStore(t, testGatewayKilled) }

func testGatewayKilled(t *testing.T, s shared) {
	pg := pgtest.Database(t)
	out, err := exec.Command(binary, "demo", "load", "--postgres-url", pg).CombinedOutput()
	require.NoError(t, err, "%s", out)
	sqlDir := t.TempDir()
	demoSQL, err := filepath.Glob(filepath.Join(repoRoot(), "demo", "sql", "*.sql"))
	require.NoError(t, err)
	for _, f := range demoSQL {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(sqlDir, filepath.Base(f)), raw, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(sqlDir, "slow.sql"), []byte(
		"-- kck:product slow(n int)\n-- kck:result value\nSELECT :n::int AS n FROM pg_sleep(1.5)\n"), 0o644))

	// The dead gateway holds its queue claims and each key's compute lease:
	// both short here, yet long enough for one survivor to refresh all 12
	// keys within its own claim (4 at a time: 4.5 s), so that none is
	// refreshed twice unless the machine stalls for seconds.
	const lease = 8 * time.Second
	gws := startGateways(t, 3, s, "KCK_POSTGRES_URL="+pg, "KCK_SQL_DIR="+sqlDir,
		"KCK_QUEUE_LEASE="+lease.String(), "KCK_COMPUTE_LEASE="+lease.String(), "KCK_PRIMER_TIMEOUT="+lease.String())
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = fmt.Sprintf("slow/%d", i+1)
	}
	cli := exec.Command(binary, append(append(append([]string{"refresh", "--queue"}, s.args...), "--postgres-url", pg, "--sql-dir", sqlDir), keys...)...)
	out, err = cli.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// The first gateway to drain claims the whole batch (20 > 12 keys) and
	// refreshes 4 at a time: kill it as soon as its first primer runs (the
	// counter moves when a run starts; claims alone could be another
	// product's scheduled refresh).
	var victim int
	require.Eventually(t, func() bool {
		for i, g := range gws {
			if g.metric(t, `kck_primer_runs_total{product="slow"}`) > 0 {
				victim = i
				return true
			}
		}
		return false
	}, 2*time.Minute, 5*time.Millisecond)
	require.NoError(t, gws[victim].cmd.Process.Kill())
	killed := time.Now()
	t.Logf("killed gateway %d while it refreshed the %d keys it claimed", victim+1, len(keys))

	store, q := s.open(t)
	require.Eventually(t, func() bool {
		st, err := q.Stats(context.Background())
		return err == nil && st.Depth == 0
	}, lease+30*time.Second, 100*time.Millisecond, "the queue drains")
	for _, k := range keys {
		e, err := store.Get(context.Background(), k)
		require.NoError(t, err, "%s was refreshed and stored", k)
		require.JSONEq(t, strings.TrimPrefix(k, "slow/"), string(e.Value))
	}
	// A refresh that ended after its claim ran out (lost_claim) stored its
	// value all the same: it counts as taken.
	var taken float64
	for i, g := range gws {
		if i != victim {
			taken += g.metric(t, `kck_queue_refreshes_total{outcome="refreshed",product="slow"}`) +
				g.metric(t, `kck_queue_refreshes_total{outcome="lost_claim",product="slow"}`)
			t.Logf("gateway %d: %v claims, %v slow runs taking %.1f s in all", i+1, g.metric(t, "kck_queue_claims_total"),
				g.metric(t, `kck_primer_duration_seconds_count{product="slow"}`), g.metric(t, `kck_primer_duration_seconds_sum{product="slow"}`))
		}
	}
	t.Logf("all %d keys stored %v after the kill; the survivors refreshed %v of them", len(keys), time.Since(killed).Round(time.Millisecond), taken)
	require.Positive(t, taken, "the survivors took over the dead gateway's claims")
	require.Equal(t, float64(len(keys)), taken, "the survivors refreshed every key the dead gateway claimed, each once; the dead gateway stored none")
	require.GreaterOrEqual(t, time.Since(killed), lease, "they waited for the lease, then refreshed")
}
