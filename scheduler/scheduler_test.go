package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// fixture: one embedded store shared by the gateways of a test, or one
// Cassandra keyspace that each gateway reaches with its own session; the
// gateways of a test share a change bus (a NATS server in the process).
type fixture struct {
	store *bolt.Store
	bus   *natstest.Server
	name  string // the cluster's, on the bus
	// open gives each gateway its store; default the embedded one.
	open func(t *testing.T) cache.Store
	runs sync.Map // key -> *atomic.Int64, primer runs over all gateways
	fail sync.Map // key -> error the primer returns
	hold sync.Map // key -> chan struct{} the primer waits on
	// decl is what p declares beyond its key and primer (warming, refresh,
	// domain) on the gateways made after it is set.
	decl primers.Product
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{store: s}
	f.open = func(*testing.T) cache.Store { return f.store }
	return f
}

// newCassandraFixture: the gateways share a fresh keyspace of the real
// cluster, each over its own session, as gateway processes do.
func newCassandraFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := cassandratest.Keyspace(t)
	return &fixture{open: func(t *testing.T) cache.Store {
		s, err := cassandra.Open(t.Context(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}
}

// stores runs fn against each real store.
func stores(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for name, newF := range map[string]func(*testing.T) *fixture{"embedded": newFixture, "cassandra": newCassandraFixture} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newF(t))
		})
	}
}

func (f *fixture) runsOf(key string) int64 {
	c, ok := f.runs.Load(key)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// gateway returns a cache named owner with the products p/{id} (counted,
// computed from id) and ids (no primer: a value that is Set, a domain).
func (f *fixture) gateway(t *testing.T, owner string, metrics ...prometheus.Registerer) *cache.Cache {
	t.Helper()
	reg := primers.NewRegistry()
	p := f.decl
	p.Name = "p"
	p.Params = []primers.Param{{Name: "id", Kind: primers.Int}}
	p.Primer = primers.Func1(func(ctx context.Context, id int64) (any, error) {
		key := fmt.Sprintf("p/%d", id)
		c, _ := f.runs.LoadOrStore(key, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if h, ok := f.hold.Load(key); ok {
			<-h.(chan struct{})
		}
		if err, ok := f.fail.Load(key); ok {
			return nil, err.(error)
		}
		return map[string]any{"id": id, "by": owner}, nil
	})
	reg.MustRegister(p, primers.Product{Name: "ids"})
	o := cache.Options{Registry: reg, Store: f.open(t), Owner: owner, PollInterval: 5 * time.Millisecond}
	if f.bus == nil {
		f.bus, f.name = natstest.Start(t), natstest.Cluster(t)
	}
	o.Bus = natstest.Bus(t, f.bus, f.name, owner)
	if len(metrics) > 0 {
		o.Registerer = metrics[0]
	}
	c, err := cache.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// queue opens the refresh queue of c's store.
func (f *fixture) queue(t *testing.T, c *cache.Cache) queue.Store {
	t.Helper()
	var (
		q   queue.Store
		err error
	)
	switch s := c.Store().(type) {
	case *bolt.Store:
		q, err = s.Queue(queue.Config{})
	case *cassandra.Store:
		q, err = s.Queue(queue.Config{})
	default:
		t.Fatalf("store %T has no queue", s)
	}
	require.NoError(t, err)
	return q
}

func (f *fixture) scheduler(t *testing.T, o scheduler.Options) *scheduler.Scheduler {
	t.Helper()
	s, err := scheduler.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Three gateways (three caches with their own Owner over one store) run a
// process every second: it runs about once per second for the cluster, not
// once per gateway. On both stores: on Cassandra the slot lease is a
// lightweight transaction between three sessions.
func TestProcessRunsOncePerSlotAcrossGateways(t *testing.T) {
	t.Parallel()
	stores(t, testProcessRunsOncePerSlot)
}

func testProcessRunsOncePerSlot(t *testing.T, f *fixture) {
	type run struct {
		gateway string
		slot    time.Time
	}
	var (
		mu   sync.Mutex
		runs []run
	)
	var scheds []*scheduler.Scheduler
	for i := range 3 {
		name := fmt.Sprintf("gw-%d", i)
		s := f.scheduler(t, scheduler.Options{Cache: f.gateway(t, name)})
		require.NoError(t, s.Process("tick", primers.Every(time.Second), func(ctx context.Context) error {
			mu.Lock()
			runs = append(runs, run{gateway: name, slot: scheduler.Slot(ctx)})
			mu.Unlock()
			return nil
		}))
		scheds = append(scheds, s)
	}
	start := time.Now()
	for _, s := range scheds {
		require.NoError(t, s.Start())
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs)
	}
	require.Eventually(t, func() bool { return count() >= 5 }, 2*time.Minute, 10*time.Millisecond)
	for _, s := range scheds {
		require.NoError(t, s.Close())
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	perGateway := map[string]int{}
	// By the slot each run was for: the time a run starts says little when
	// taking the lease (a Paxos round on Cassandra) is slow.
	slots := map[time.Time]int{}
	for _, r := range runs {
		perGateway[r.gateway]++
		require.False(t, r.slot.IsZero(), "a job knows its slot")
		require.Equal(t, r.slot, r.slot.Truncate(time.Second), "slots are whole seconds")
		slots[r.slot]++
	}
	t.Logf("%d runs in %v over 3 gateways (%v)", len(runs), elapsed.Round(time.Millisecond), perGateway)
	// Five runs took at least four seconds: one per second, not three.
	require.GreaterOrEqual(t, elapsed, 4*time.Second)
	require.LessOrEqual(t, len(runs), int(elapsed/time.Second)+1, "at most one run per slot")
	for slot, n := range slots {
		var where []string
		for _, r := range runs {
			if r.slot.Equal(slot) {
				where = append(where, r.gateway)
			}
		}
		require.Equal(t, 1, n, "slot %v ran %d times, on %v", slot, n, where)
	}
}

// The drift case that defeats a lock held only while the job runs: three
// gateways whose tickers fire up to 0.4 s apart take the same slot once.
func TestSlotLockerDrift(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	type gw struct {
		locker *scheduler.SlotLocker
		clock  *cachetest.Clock
	}
	var gws []gw
	for i, skew := range []time.Duration{-300 * time.Millisecond, 0, 400 * time.Millisecond} {
		clock := cachetest.NewClock(base.Add(skew))
		l := scheduler.NewSlotLocker(f.store, fmt.Sprintf("gw-%d", i), clock)
		require.NoError(t, l.Add("fast", primers.Every(time.Second)))
		require.NoError(t, l.Add("cron", primers.Cron("*/10 * * * * *")))
		gws = append(gws, gw{l, clock})
	}
	for slot := range 5 {
		for _, job := range []string{"fast", "cron"} {
			won := 0
			for _, g := range gws {
				lock, err := g.locker.Lock(t.Context(), job)
				if err == nil {
					won++
					require.NoError(t, lock.Unlock(t.Context()))
				} else {
					require.ErrorIs(t, err, scheduler.ErrOtherGateway)
				}
			}
			if job == "fast" || slot == 0 {
				require.Equal(t, 1, won, "job %s slot %d", job, slot)
			}
		}
		for _, g := range gws {
			g.clock.Advance(time.Second)
		}
	}
	_, err := gws[0].locker.Lock(t.Context(), "unknown")
	require.ErrorContains(t, err, "no schedule")
}

// One gateway whose ticker fires twice for the same nearest slot (a late
// run, then the next tick 0.4 s on) runs it once: the store alone would grant
// the lease again, since it is this gateway's already.
func TestSlotLockerOneGatewayTwiceInASlot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clock := cachetest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).Add(-300 * time.Millisecond))
	l := scheduler.NewSlotLocker(f.store, "gw", clock)
	require.NoError(t, l.Add("fast", primers.Every(time.Second)))
	_, err := l.Lock(t.Context(), "fast")
	require.NoError(t, err)
	clock.Advance(400 * time.Millisecond) // 12:00:00.1, the same nearest slot
	_, err = l.Lock(t.Context(), "fast")
	require.ErrorIs(t, err, scheduler.ErrOtherGateway)
	require.ErrorContains(t, err, "already ran on this gateway")
	clock.Advance(time.Second)
	_, err = l.Lock(t.Context(), "fast")
	require.NoError(t, err, "the next slot")
}

func TestWarmingFillsTheCacheAndFlipsReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.decl = primers.Product{
		Warm: []string{"p/1", "p/2", "p/01"},
		WarmKeys: func(ctx context.Context) ([]string, error) {
			keys := make([]string, 0, 40)
			for i := 2; i < 40; i++ {
				keys = append(keys, fmt.Sprintf("p/%d", i))
			}
			return keys, nil
		},
	}
	c := f.gateway(t, "gw")
	var logs lockedBuffer
	s := f.scheduler(t, scheduler.Options{Cache: c, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.False(t, s.Ready(), "not ready before warming")
	require.NoError(t, s.Start())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.WaitReady(ctx))
	require.True(t, s.Ready())
	for i := 1; i < 40; i++ {
		key := fmt.Sprintf("p/%d", i)
		require.EqualValues(t, 1, f.runsOf(key), key)
		_, ok := c.Peek(key)
		require.True(t, ok, "%s is in the in-process tier", key)
	}
	out := logs.String()
	require.Contains(t, out, "warming started")
	require.Contains(t, out, "warming progress")
	require.Contains(t, out, "keys_total=39")
	require.Contains(t, out, "warming done")
	require.Contains(t, out, "keys_failed=0")
}

func TestWarmingCarriesOnPastFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.fail.Store("p/2", errors.New("source down"))
	f.decl = primers.Product{
		Warm: []string{"p/1", "p/2", "p/3"},
		WarmKeys: func(ctx context.Context) ([]string, error) {
			return []string{"p/4", "ids"}, errors.New("listing authors failed")
		},
	}
	c := f.gateway(t, "gw")
	s := f.scheduler(t, scheduler.Options{Cache: c})
	rep, err := s.Warm(t.Context())
	require.ErrorContains(t, err, "listing authors failed")
	require.ErrorContains(t, err, `bad warm key "ids"`)
	require.Equal(t, 4, rep.Keys)
	require.Equal(t, 1, rep.Failed)
	for _, k := range []string{"p/1", "p/3", "p/4"} {
		require.EqualValues(t, 1, f.runsOf(k))
	}
	// Ready all the same: a gateway serves what it can.
	require.NoError(t, s.Start())
	require.NoError(t, s.WaitReady(t.Context()))
}

// Warming reads every member of a domain too, so that they are in the
// in-process tier before Ready, each computed once however many gateways
// warm at the same time.
func TestWarmingFillsDomainMembers(t *testing.T) {
	t.Parallel()
	stores(t, testWarmingFillsDomainMembers)
}

func testWarmingFillsDomainMembers(t *testing.T, f *fixture) {
	var scheds []*scheduler.Scheduler
	var caches []*cache.Cache
	f.decl = primers.Product{Domain: primers.Domain{Key: "ids", Schedule: primers.Every(time.Hour)}}
	for i := range 3 {
		c := f.gateway(t, fmt.Sprintf("gw-%d", i))
		s := f.scheduler(t, scheduler.Options{Cache: c})
		caches, scheds = append(caches, c), append(scheds, s)
	}
	_, err := caches[0].Set(t.Context(), "ids", []int{7, 8, 9})
	require.NoError(t, err)
	for _, s := range scheds {
		require.NoError(t, s.Start())
	}
	for i, s := range scheds {
		require.NoError(t, s.WaitReady(t.Context()))
		for _, k := range []string{"p/7", "p/8", "p/9"} {
			_, ok := caches[i].Peek(k)
			require.True(t, ok, "gateway %d holds %s at ready", i, k)
		}
	}
	for _, k := range []string{"p/7", "p/8", "p/9"} {
		require.EqualValues(t, 1, f.runsOf(k), "%s computed once for the cluster", k)
	}
}

func TestReadyWithoutWarming(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.scheduler(t, scheduler.Options{Cache: f.gateway(t, "gw")})
	require.NoError(t, s.Start())
	require.NoError(t, s.WaitReady(t.Context()))
}

// Each gateway refreshes the keys it holds; a key two gateways hold is
// computed once per slot, not once per gateway.
func TestProductRefreshOnEveryGateway(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	var scheds []*scheduler.Scheduler
	f.decl = primers.Product{Refresh: primers.Every(200 * time.Millisecond), Warm: []string{"p/1"}}
	for i := range 2 {
		c := f.gateway(t, fmt.Sprintf("gw-%d", i))
		s := f.scheduler(t, scheduler.Options{Cache: c, Registerer: reg})
		_, err := c.Get(t.Context(), fmt.Sprintf("p/%d", 10+i)) // known to this gateway only
		require.NoError(t, err)
		scheds = append(scheds, s)
	}
	for _, s := range scheds {
		require.NoError(t, s.Start())
	}
	require.Eventually(t, func() bool {
		return f.runsOf("p/1") >= 5 && f.runsOf("p/10") >= 5 && f.runsOf("p/11") >= 5
	}, 2*time.Minute, 10*time.Millisecond)
	for _, s := range scheds {
		require.NoError(t, s.Close())
	}
	jobRuns := metrictest.Value(t, reg, "kck_scheduler_job_runs_total", "refresh/p", "ok")
	t.Logf("refresh job ran %v times on 2 gateways; p/1 computed %d times, p/10 %d, p/11 %d",
		jobRuns, f.runsOf("p/1"), f.runsOf("p/10"), f.runsOf("p/11"))
	// One warm computation plus about one per slot, though both gateways
	// ask each slot (a gateway that checks just before the other stores and
	// starts just after it may compute again: refreshes are at-least-once).
	require.LessOrEqual(t, float64(f.runsOf("p/1")-1), jobRuns*3/4+1)
}

// With a queue, refresh jobs enqueue and the drain job refreshes.
func TestProductRefreshThroughTheQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.decl = primers.Product{Refresh: primers.Every(200 * time.Millisecond), Warm: []string{"p/1"}}
	c := f.gateway(t, "gw")
	q, err := f.store.Queue(queue.Config{})
	require.NoError(t, err)
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: c})
	require.NoError(t, err)
	s := f.scheduler(t, scheduler.Options{Cache: c, Queue: q, Worker: w, DrainInterval: 50 * time.Millisecond})
	require.NoError(t, s.Start())
	require.Eventually(t, func() bool { return f.runsOf("p/1") >= 3 }, 2*time.Minute, 10*time.Millisecond)
	// Requests queued from outside are drained too.
	require.NoError(t, q.Enqueue(t.Context(), "p/99", time.Now()))
	require.Eventually(t, func() bool { return f.runsOf("p/99") == 1 }, 2*time.Minute, 10*time.Millisecond)
}

// A domain keeps its members primed, once for the cluster; members that
// leave are no longer refreshed.
func TestDomainKeepsMembersPrimed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	var scheds []*scheduler.Scheduler
	var caches []*cache.Cache
	f.decl = primers.Product{Domain: primers.Domain{Key: "ids", Schedule: primers.Every(100 * time.Millisecond)}}
	for i := range 2 {
		c := f.gateway(t, fmt.Sprintf("gw-%d", i))
		caches = append(caches, c)
		s := f.scheduler(t, scheduler.Options{Cache: c, Registerer: reg})
		scheds = append(scheds, s)
	}
	c := caches[0]
	_, err := c.Set(t.Context(), "ids", []int{1, 2, 3})
	require.NoError(t, err)
	for _, s := range scheds {
		require.NoError(t, s.Start())
	}
	require.Eventually(t, func() bool {
		return f.runsOf("p/1") == 1 && f.runsOf("p/2") == 1 && f.runsOf("p/3") == 1
	}, 2*time.Minute, 5*time.Millisecond)

	// 1 leaves, 4 joins.
	ran := func() float64 { return metrictest.Value(t, reg, "kck_scheduler_job_runs_total", "domain/p", "ok") }
	_, err = c.Set(t.Context(), "ids", []int{2, 3, 4})
	require.NoError(t, err)
	// Wait until every gateway sees the new domain (the other one through
	// the change bus) and no run that read the old one is still going.
	require.Eventually(t, func() bool {
		for _, c := range caches {
			r, err := c.Get(t.Context(), "ids")
			if err != nil || string(r.Value) != "[2,3,4]" {
				return false
			}
		}
		return true
	}, 2*time.Minute, 5*time.Millisecond)
	before := ran()
	require.Eventually(t, func() bool { return ran() >= before+2 }, 2*time.Minute, 5*time.Millisecond)
	// 1 and 2 lose their values: 2 is primed again, 1 is not.
	for _, k := range []string{"p/1", "p/2"} {
		for _, c := range caches {
			require.NoError(t, c.Invalidate(t.Context(), k))
		}
	}
	require.Eventually(t, func() bool { return f.runsOf("p/4") == 1 && f.runsOf("p/2") == 2 }, 2*time.Minute, 5*time.Millisecond)
	after := ran()
	require.Eventually(t, func() bool { return ran() >= after+3 }, 2*time.Minute, 5*time.Millisecond)
	require.EqualValues(t, 1, f.runsOf("p/1"), "a member that left is not primed again")
	require.EqualValues(t, 1, f.runsOf("p/3"), "a primed member is left alone")
	require.EqualValues(t, 1, f.runsOf("p/4"), "primed once for the cluster")
	require.Equal(t, 3.0, metrictest.Value(t, reg, "kck_domain_members", "p"))
	skipped := metrictest.Value(t, reg, "kck_scheduler_job_runs_total", "domain/p", "other_gateway")
	t.Logf("domain job: %v runs, %v slots taken by the other gateway", ran(), skipped)
	require.Positive(t, skipped, "the other gateway's attempts at each slot were refused")
}

// A member missing when the domain job runs, because another gateway is
// still computing it (warming at boot), is computed once: the job reads it,
// waiting for the other gateway's value, instead of refreshing it after.
// Three gateways warming on Cassandra computed 302 of 300 title lists when
// the first domain run fell inside warming.
func TestDomainMemberBeingComputedElsewhere(t *testing.T) {
	stores(t, func(t *testing.T, f *fixture) {
		f.decl = primers.Product{Domain: primers.Domain{Key: "ids", Schedule: primers.Every(50 * time.Millisecond)}}
		a := f.gateway(t, "gw-a")
		reg := prometheus.NewRegistry()
		b := f.gateway(t, "gw-b", reg)
		// b's scheduler enqueues refreshes; the queue is drained once a has
		// stored p/1, as by another gateway's worker. A refresh taken from
		// it then computes p/1 again: a's value was computed before the
		// request.
		q := f.queue(t, b)
		sreg := prometheus.NewRegistry()
		s := f.scheduler(t, scheduler.Options{Cache: b, Queue: q, Registerer: sreg})
		require.NoError(t, s.Start())
		// b's warming is over before the domain has members, so that only
		// the domain job can meet p/1.
		require.Eventually(t, s.Ready, 2*time.Minute, time.Millisecond)

		release := make(chan struct{})
		f.hold.Store("p/1", release)
		warmed := make(chan error, 1)
		go func() { _, err := a.Get(context.Background(), "p/1"); warmed <- err }()
		require.Eventually(t, func() bool { return f.runsOf("p/1") == 1 }, 2*time.Minute, time.Millisecond, "a computes p/1")
		_, err := a.Set(t.Context(), "ids", []int{1})
		require.NoError(t, err)
		depth := func() int {
			st, err := q.Stats(t.Context())
			require.NoError(t, err)
			return st.Depth
		}
		require.Eventually(t, func() bool { return metrictest.Value(t, reg, "kck_lease_waits_total") >= 1 || depth() > 0 }, 2*time.Minute, time.Millisecond,
			"b's domain job found p/1 missing")
		close(release)
		require.NoError(t, <-warmed)
		runs := func() float64 { return metrictest.Value(t, sreg, "kck_scheduler_job_runs_total", "domain/p", "ok") }
		after := runs()
		require.Eventually(t, func() bool { return runs() >= after+2 }, 2*time.Minute, time.Millisecond)
		w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: b})
		require.NoError(t, err)
		_, err = w.Drain(t.Context())
		require.NoError(t, err)
		require.EqualValues(t, 1, f.runsOf("p/1"), "computed once")
		r, err := b.Get(t.Context(), "p/1")
		require.NoError(t, err)
		require.Contains(t, string(r.Value), `"by":"gw-a"`, "a's value")
	})
}

func TestDomainMembers(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	reg.MustRegister(
		primers.Product{Name: "p", Params: []primers.Param{{Name: "id", Kind: primers.Int}}},
		primers.Product{Name: "sales", Params: []primers.Param{{Name: "id", Kind: primers.Int}, {Name: "region", Kind: primers.String}}},
		primers.Product{Name: "day", Params: []primers.Param{{Name: "d", Kind: primers.Date}, {Name: "on", Kind: primers.Bool}, {Name: "f", Kind: primers.Float}}},
	)
	for _, tc := range []struct {
		name, product, value string
		want                 []string
		err                  string
	}{
		{"scalars", "p", `[1, 2, 3]`, []string{"p/1", "p/2", "p/3"}, ""},
		{"one-element sets", "p", `[[1], [2]]`, []string{"p/1", "p/2"}, ""},
		{"duplicates dropped", "p", `[1, 2, 1]`, []string{"p/1", "p/2"}, ""},
		{"sets", "sales", `[[1, "eu"], [2, "us/west"], [3, "100%"]]`, []string{"sales/1/eu", "sales/2/us%2Fwest", "sales/3/100%25"}, ""},
		{"typed", "day", `[["2026-11-01", true, 2.50]]`, []string{"day/2026-11-01/true/2.5"}, ""},
		{"empty", "p", `[]`, nil, ""},
		{"bad members kept apart", "p", `[1, "x", [1, 2], null, 4]`, []string{"p/1", "p/4"}, "3 of 5 members are not keys"},
		{"not an array", "p", `{"a": 1}`, nil, "not a JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := scheduler.DomainMembers(reg, tc.product, []byte(tc.value))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDeclarationsAreChecked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.gateway(t, "gw")
	_, err := scheduler.New(scheduler.Options{})
	require.ErrorContains(t, err, "Cache is required")
	q, err := f.store.Queue(queue.Config{})
	require.NoError(t, err)
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: c})
	require.NoError(t, err)
	_, err = scheduler.New(scheduler.Options{Cache: c, Worker: w})
	require.ErrorContains(t, err, "needs the Queue")

	s := f.scheduler(t, scheduler.Options{Cache: c})
	noop := func(context.Context) error { return nil }
	require.NoError(t, s.Process("nightly", primers.Cron("0 3 * * *"), noop))
	require.ErrorContains(t, s.Process("nightly", primers.Every(time.Minute), noop), "declared twice")
	require.ErrorContains(t, s.Process("bad name", primers.Every(time.Minute), noop), "must match")
	require.ErrorContains(t, s.Process("x", primers.Cron("not cron"), noop), "not cron")
	require.ErrorContains(t, s.Process("y", primers.Every(0), noop), "empty")
	require.ErrorContains(t, s.Process("z", primers.Every(time.Minute), nil), "nil function")
	require.NoError(t, s.Start())
	require.ErrorContains(t, s.Start(), "started twice")
	require.ErrorContains(t, s.Process("late", primers.Every(time.Minute), noop), "after Start")

	// What a product declares is checked when New reads it: a domain whose
	// key names no product, or a key the product refuses. (The registry
	// checked the warm keys and schedules: see primers' tests.)
	for key, want := range map[string]string{"nope": "no product named nope", "p/x": "parameter id"} {
		f.decl = primers.Product{Domain: primers.Domain{Key: key, Schedule: primers.Every(time.Minute)}}
		_, err := scheduler.New(scheduler.Options{Cache: f.gateway(t, "gw")})
		require.ErrorContains(t, err, `scheduler: domain of "p": `, key)
		require.ErrorContains(t, err, want, key)
	}
}

// A process that fails or panics is counted and does not stop the others.
func TestFailingProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	s := f.scheduler(t, scheduler.Options{Cache: f.gateway(t, "gw"), Registerer: reg})
	var ok atomic.Int64
	require.NoError(t, s.Process("fails", primers.Every(50*time.Millisecond), func(context.Context) error { return errors.New("no") }))
	require.NoError(t, s.Process("panics", primers.Every(50*time.Millisecond), func(context.Context) error { panic("boom") }))
	require.NoError(t, s.Process("works", primers.Every(50*time.Millisecond), func(context.Context) error { ok.Add(1); return nil }))
	require.NoError(t, s.Start())
	require.Eventually(t, func() bool {
		return ok.Load() >= 3 &&
			metrictest.Value(t, reg, "kck_scheduler_job_runs_total", "fails", "failed") >= 2 &&
			metrictest.Value(t, reg, "kck_scheduler_job_runs_total", "panics", "failed") >= 2
	}, 2*time.Minute, 10*time.Millisecond)
}

// Start warns of products whose freshness target no periodic refresh meets.
func TestStartWarnsOfUnmetFreshnessTargets(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	noop := primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 1, nil })
	hourly, err := primers.ParseSchedule("@hourly")
	require.NoError(t, err)
	refresh := map[string]primers.Schedule{"met": primers.Every(30 * time.Second), "slow": primers.Every(time.Minute), "hourly": hourly, "untargeted": primers.Every(time.Hour)}
	for name, target := range map[string]time.Duration{"met": time.Minute, "none": time.Minute, "slow": 10 * time.Second, "hourly": 2 * time.Hour, "untargeted": 0} {
		reg.MustRegister(primers.Product{Name: name, Primer: noop, FreshnessTarget: target, Refresh: refresh[name]})
	}
	f := newFixture(t)
	c, err := cache.New(cache.Options{Registry: reg, Store: f.store})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	var logs lockedBuffer
	s := f.scheduler(t, scheduler.Options{Cache: c, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, s.Start())
	out := logs.String()
	require.Contains(t, out, `msg="product has a freshness target and no periodic refresh: its values grow older than the target while its sources do not change" product=none target=1m0s`)
	require.Contains(t, out, `msg="product is refreshed less often than its freshness target" product=slow target=10s refresh_every=1m0s`)
	require.Equal(t, 2, strings.Count(out, "freshness target"), "met, hourly and untargeted are fine: %s", out)
}

// Stop (a gateway draining) starts no run and lets the one under way
// finish: its context is not cancelled, and Stop waits for it (here until
// its own deadline, then says so). Close cancels a run still under way.
func TestStopLetsTheRunUnderWayFinish(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		release bool // the run finishes before Close
	}{{"finishes", true}, {"cancelled by Close", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			s, err := scheduler.New(scheduler.Options{Cache: f.gateway(t, "gw")})
			require.NoError(t, err)
			started := make(chan struct{}, 1)
			release := make(chan struct{})
			var runs, cancelled atomic.Int64
			require.NoError(t, s.Process("slow", primers.Every(20*time.Millisecond), func(ctx context.Context) error {
				runs.Add(1)
				select {
				case started <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-ctx.Done():
					cancelled.Add(1)
				}
				return nil
			}))
			require.NoError(t, s.Start())
			<-started
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, s.Stop(ctx), context.DeadlineExceeded, "Stop waits for the run under way")
			require.Zero(t, cancelled.Load(), "Stop does not cancel it")
			if tc.release {
				close(release)
				require.NoError(t, s.Stop(t.Context()), "once it finished, Stop returns")
				require.Zero(t, cancelled.Load())
				n := runs.Load()
				require.Never(t, func() bool { return runs.Load() > n }, 200*time.Millisecond, 10*time.Millisecond,
					"no run starts after Stop (ten periods)")
			}
			require.NoError(t, s.Close())
			if !tc.release {
				require.EqualValues(t, 1, cancelled.Load(), "Close cancels the run Stop waited for")
			}
		})
	}
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.scheduler(t, scheduler.Options{Cache: f.gateway(t, "gw")})
	require.NoError(t, s.Stop(t.Context()))
}
