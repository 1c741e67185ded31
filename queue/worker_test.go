package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
)

// fixture: one embedded store and its queue, shared by the gateways (caches)
// of a test, as gateways share a Cassandra cluster; or a real Cassandra
// keyspace, each gateway with its own session.
type fixture struct {
	q     queue.Store
	open  func(t *testing.T) cache.Store // each gateway's store
	clock *cachetest.Clock               // the queue's clock: leases and backoff
	runs  sync.Map                       // key -> *atomic.Int64, primer runs over all gateways
}

func newFixture(t *testing.T, cfg queue.Config) *fixture {
	t.Helper()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{open: func(*testing.T) cache.Store { return s }, clock: cachetest.NewClock(time.Now())}
	if cfg.Clock == nil {
		cfg.Clock = f.clock
	}
	f.q, err = s.Queue(cfg)
	require.NoError(t, err)
	return f
}

func newCassandraFixture(t *testing.T, cfg queue.Config) *fixture {
	t.Helper()
	ks := cassandratest.Keyspace(t)
	open := func(t *testing.T) cache.Store {
		s, err := cassandra.Open(t.Context(), ks)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	f := &fixture{open: open, clock: cachetest.NewClock(time.Now())}
	if cfg.Clock == nil {
		cfg.Clock = f.clock
	}
	q, err := open(t).(*cassandra.Store).Queue(cfg)
	require.NoError(t, err)
	f.q = q
	return f
}

// stores runs fn on a fixture of each real store.
func stores(t *testing.T, cfg queue.Config, fn func(t *testing.T, f *fixture)) {
	for name, newF := range map[string]func(*testing.T, queue.Config) *fixture{"embedded": newFixture, "cassandra": newCassandraFixture} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newF(t, cfg))
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

// gateway returns a cache named owner over the fixture's store whose
// product p/{id} is computed by prime (nil: a primer that counts its runs).
func (f *fixture) gateway(t *testing.T, owner string, prime func(ctx context.Context, id int64) (any, error)) *cache.Cache {
	t.Helper()
	reg := primers.NewRegistry()
	counting := func(ctx context.Context, id int64) (any, error) {
		c, _ := f.runs.LoadOrStore(fmt.Sprintf("p/%d", id), new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if prime != nil {
			return prime(ctx, id)
		}
		return map[string]any{"id": id, "by": owner}, nil
	}
	reg.MustRegister(primers.Product{
		Name:   "p",
		Params: []primers.Param{{Name: "id", Kind: primers.Int}},
		Primer: primers.Func1(counting),
	})
	c, err := cache.New(cache.Options{Registry: reg, Store: f.open(t), Owner: owner, PollInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (f *fixture) worker(t *testing.T, c *cache.Cache, o queue.WorkerOptions) *queue.Worker {
	t.Helper()
	o.Queue, o.Cache = f.q, c
	w, err := queue.NewWorker(o)
	require.NoError(t, err)
	return w
}

func keysN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p/%d", i)
	}
	return out
}

// Three gateways drain 1,000 queued keys: every key is refreshed, and
// claims keep duplicates rare (here: none, since no lease runs out). On
// the embedded store and on Cassandra, where claims are lightweight
// transactions between three sessions.
func TestThreeWorkersDrainTheQueue(t *testing.T) {
	t.Parallel()
	stores(t, queue.Config{Clock: cache.SystemClock{}}, testThreeWorkersDrain)
}

func testThreeWorkersDrain(t *testing.T, f *fixture) {
	start := time.Now()
	const n = 1000
	keys := keysN(n)
	require.NoError(t, f.q.EnqueueMany(t.Context(), keys, time.Now()))

	var wg sync.WaitGroup
	reports := make([]queue.Report, 3)
	errs := make([]error, 3)
	for i := range 3 {
		w := f.worker(t, f.gateway(t, fmt.Sprintf("gw-%d", i), nil), queue.WorkerOptions{})
		wg.Go(func() { reports[i], errs[i] = w.Drain(t.Context()) })
	}
	wg.Wait()
	total := int64(0)
	for i, k := range keys {
		runs := f.runsOf(k)
		require.GreaterOrEqual(t, runs, int64(1), "key %d never refreshed", i)
		total += runs
	}
	claimed := 0
	for i := range 3 {
		require.NoError(t, errs[i])
		claimed += reports[i].Claimed
		t.Logf("worker %d: claimed %d, outcomes %v", i, reports[i].Claimed, reports[i].Outcomes)
		require.NotZero(t, reports[i].Claimed, "every worker took a share")
	}
	dup := float64(total-n) / n
	t.Logf("%d keys, %d refreshes, %d claims in %v: duplicate rate %.2f%%", n, total, claimed, time.Since(start).Round(time.Millisecond), 100*dup)
	require.LessOrEqual(t, dup, 0.01)
	st, err := f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Zero(t, st.Depth)
}

// A worker killed mid-batch (stopped without Done or Release) holds its
// keys until the lease runs out; then another worker refreshes them.
func TestKilledWorkersKeysAreRefreshedAfterTheLease(t *testing.T) {
	t.Parallel()
	stores(t, queue.Config{}, testKilledWorker)
}

func testKilledWorker(t *testing.T, f *fixture) {
	keys := keysN(10)
	require.NoError(t, f.q.EnqueueMany(t.Context(), keys, time.Now()))

	started := make(chan int64, 10)
	unblock := make(chan struct{})
	gwA := f.gateway(t, "gw-a", func(ctx context.Context, id int64) (any, error) {
		started <- id
		<-unblock
		return nil, errors.New("killed")
	})
	wA := f.worker(t, gwA, queue.WorkerOptions{Batch: 6, Concurrency: 2, LeaseTTL: time.Minute})
	ctxA, kill := context.WithCancel(t.Context())
	doneA := make(chan error)
	go func() {
		_, err := wA.Drain(ctxA)
		doneA <- err
	}()
	<-started
	<-started // two refreshes in flight, four more keys claimed, waiting
	kill()
	require.ErrorIs(t, <-doneA, context.Canceled)
	close(unblock) // the dead gateway's primers give up

	gwB := f.gateway(t, "gw-b", nil)
	wB := f.worker(t, gwB, queue.WorkerOptions{Batch: 6, LeaseTTL: time.Minute})
	rep, err := wB.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, 4, rep.Claimed, "the dead worker's six keys are still leased")
	st, err := f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Equal(t, 6, st.Claimed)

	f.clock.Advance(time.Minute)
	rep, err = wB.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, 6, rep.Claimed)
	require.Equal(t, 6, rep.Outcomes[queue.Refreshed])
	for _, k := range keys {
		r, err := gwB.Get(t.Context(), k)
		require.NoError(t, err)
		require.JSONEq(t, fmt.Sprintf(`{"id":%s,"by":"gw-b"}`, k[2:]), string(r.Value))
	}
	st, err = f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Zero(t, st.Depth)
}

// A stopped worker (a gateway shutting down) finishes the batch it holds
// and claims no more: its keys are marked done, none is left to its lease,
// and another worker takes the rest at once.
func TestStoppedWorkerFinishesItsBatch(t *testing.T) {
	t.Parallel()
	stores(t, queue.Config{}, func(t *testing.T, f *fixture) {
		keys := keysN(10)
		require.NoError(t, f.q.EnqueueMany(t.Context(), keys, time.Now()))
		started := make(chan int64, 10)
		unblock := make(chan struct{})
		gwA := f.gateway(t, "gw-a", func(ctx context.Context, id int64) (any, error) {
			started <- id
			<-unblock
			return map[string]any{"id": id, "by": "gw-a"}, nil
		})
		wA := f.worker(t, gwA, queue.WorkerOptions{Batch: 6, Concurrency: 2, LeaseTTL: time.Minute})
		type drained struct {
			rep queue.Report
			err error
		}
		doneA := make(chan drained)
		go func() {
			rep, err := wA.Drain(t.Context())
			doneA <- drained{rep, err}
		}()
		<-started
		<-started // two refreshes in flight, four more keys claimed, waiting
		wA.Stop()
		close(unblock)
		d := <-doneA
		require.NoError(t, d.err)
		require.Equal(t, 6, d.rep.Claimed, "the batch it held, and no other")
		require.Equal(t, 6, d.rep.Outcomes[queue.Refreshed])
		st, err := f.q.Stats(t.Context())
		require.NoError(t, err)
		require.Zero(t, st.Claimed, "no claim is left to its lease")
		require.Equal(t, 4, st.Depth)

		rep, err := wA.Drain(t.Context())
		require.NoError(t, err)
		require.Zero(t, rep.Claimed, "a stopped worker claims nothing")
		gwB := f.gateway(t, "gw-b", nil)
		rep, err = f.worker(t, gwB, queue.WorkerOptions{Batch: 6}).Drain(t.Context())
		require.NoError(t, err)
		require.Equal(t, 4, rep.Claimed, "the rest, without waiting for a lease")
	})
}

// A key whose stored value was computed after the request is not computed
// again; one requested after its value was computed is.
func TestSkipWhenAFresherValueIsStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{})
	reg := prometheus.NewRegistry()
	gw := f.gateway(t, "gw", nil)
	w := f.worker(t, gw, queue.WorkerOptions{Registerer: reg})

	requested := time.Now().Add(-time.Minute)
	require.NoError(t, f.q.Enqueue(t.Context(), "p/1", requested))
	_, err := gw.Get(t.Context(), "p/1") // computed now, after the request
	require.NoError(t, err)
	_, err = gw.Get(t.Context(), "p/2")
	require.NoError(t, err)
	require.NoError(t, f.q.Enqueue(t.Context(), "p/2", time.Now().Add(time.Millisecond)))
	// Only in the store, not in this gateway's memory: another gateway
	// computed it.
	other := f.gateway(t, "gw-other", nil)
	_, err = other.Get(t.Context(), "p/3")
	require.NoError(t, err)
	require.NoError(t, f.q.Enqueue(t.Context(), "p/3", requested))

	rep, err := w.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, map[queue.Outcome]int{queue.SkippedFresh: 2, queue.Refreshed: 1}, rep.Outcomes)
	require.EqualValues(t, 1, f.runsOf("p/1"))
	require.EqualValues(t, 2, f.runsOf("p/2"))
	require.EqualValues(t, 1, f.runsOf("p/3"))
	require.Equal(t, 2.0, metricValue(t, reg, "kck_queue_refreshes_total", "skipped_fresh"))
	require.Equal(t, 3.0, metricValue(t, reg, "kck_queue_refreshes_total", "p"), "labelled by product: 2 skipped, 1 refreshed")
}

// A key that always fails is retried with backoff, then poisoned and
// surfaced in Stats and the metrics; other keys are not held up.
func TestPoisonedKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{MaxAttempts: 3})
	reg := prometheus.NewRegistry()
	gw := f.gateway(t, "gw", func(ctx context.Context, id int64) (any, error) {
		if id == 13 {
			return nil, errors.New("source is broken for 13")
		}
		return id, nil
	})
	w := f.worker(t, gw, queue.WorkerOptions{Registerer: reg})
	now := time.Now()
	require.NoError(t, f.q.EnqueueMany(t.Context(), []string{"p/13", "p/1", "nope/1", "p/bad"}, now))

	rep, err := w.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, map[queue.Outcome]int{queue.Refreshed: 1, queue.Failed: 3}, rep.Outcomes)
	// An unknown product and a malformed key cannot succeed: poisoned at once.
	st, err := f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, st.Poisoned)
	require.Equal(t, 1, st.Delayed)
	it, err := f.q.Get(t.Context(), "p/13")
	require.NoError(t, err)
	require.Equal(t, 1, it.Attempts)
	require.Contains(t, it.LastError, "source is broken")

	for range 2 {
		rep, err = w.Drain(t.Context())
		require.NoError(t, err)
		require.Zero(t, rep.Claimed, "backing off")
		f.clock.Advance(queue.DefaultBackoff(it.Attempts))
		rep, err = w.Drain(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, rep.Outcomes[queue.Failed])
		it, err = f.q.Get(t.Context(), "p/13")
		require.NoError(t, err)
	}
	require.True(t, it.Poisoned)
	require.EqualValues(t, 3, f.runsOf("p/13"))
	f.clock.Advance(time.Hour)
	rep, err = w.Drain(t.Context())
	require.NoError(t, err)
	require.Zero(t, rep.Claimed, "poisoned keys are not retried")
	st, err = f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3, st.Poisoned)
	require.ElementsMatch(t, []string{"p/13", "nope/1", "p/bad"}, st.PoisonedKeys)
	require.Equal(t, 3.0, metricValue(t, reg, "kck_queue_poisoned", ""))
	require.Equal(t, 0.0, metricValue(t, reg, "kck_queue_depth", ""))
	require.Equal(t, 5.0, metricValue(t, reg, "kck_queue_refreshes_total", "failed"))
}

// A request that arrives while its key is being refreshed is not lost: the
// refresh may have read the source before the change it announces.
func TestRequestDuringRefreshIsKept(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{})
	var once sync.Once
	gw := f.gateway(t, "gw", func(ctx context.Context, id int64) (any, error) {
		once.Do(func() {
			// A change lands while the primer runs.
			_ = f.q.Enqueue(context.WithoutCancel(ctx), "p/1", time.Now().Add(time.Second))
		})
		return id, nil
	})
	w := f.worker(t, gw, queue.WorkerOptions{})
	require.NoError(t, f.q.Enqueue(t.Context(), "p/1", time.Now()))
	rep, err := w.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, rep.Claimed)
	require.EqualValues(t, 2, f.runsOf("p/1"))
}

func TestWorkerRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{Clock: cache.SystemClock{}})
	gw := f.gateway(t, "gw", nil)
	w := f.worker(t, gw, queue.WorkerOptions{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	require.NoError(t, f.q.Enqueue(t.Context(), "p/7", time.Now()))
	require.Eventually(t, func() bool { return f.runsOf("p/7") == 1 }, 2*time.Minute, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestWorkerOptions(t *testing.T) {
	t.Parallel()
	_, err := queue.NewWorker(queue.WorkerOptions{})
	require.ErrorContains(t, err, "Queue is required")
	require.ErrorContains(t, err, "Cache is required")
	f := newFixture(t, queue.Config{})
	gw := f.gateway(t, "gw-name", nil)
	w := f.worker(t, gw, queue.WorkerOptions{})
	require.Equal(t, "gw-name", w.Name())
	// Two workers in one process share their series instead of failing.
	reg := prometheus.NewRegistry()
	f.worker(t, gw, queue.WorkerOptions{Name: "a", Registerer: reg})
	f.worker(t, gw, queue.WorkerOptions{Name: "b", Registerer: reg})
}

// metricValue is the value of a gathered series, by name and (for vectors)
// its one label value.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	// The sum over the series with a label of that value (e.g. an outcome,
	// over every product).
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == label }) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("no series %s{%s}", name, label)
	}
	return sum
}

// refreshFunc is a cache whose Refresh is fn: the worker reads everything
// else (keys, versions, the store) from the real cache.
type refreshFunc struct {
	*cache.Cache
	fn func(ctx context.Context, key string) (cache.Result, error)
}

func (r refreshFunc) Refresh(ctx context.Context, key string) (cache.Result, error) {
	return r.fn(ctx, key)
}

// What a refresh's error does to its request: nothing to compute (no data)
// is done, an error that cannot go away poisons the key at once, any other
// is retried later.
func TestRefreshErrorsDecideTheOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{MaxAttempts: 3})
	errs := map[string]error{
		"p/1": nil,
		"p/2": fmt.Errorf("%w: no author 2", primers.ErrNoData),
		"p/3": fmt.Errorf("%w: p/3", cache.ErrNotSet),
		"p/4": errors.New("source is down"),
	}
	c := refreshFunc{Cache: f.gateway(t, "gw", nil), fn: func(_ context.Context, key string) (cache.Result, error) {
		return cache.Result{}, errs[key]
	}}
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: f.q, Cache: c})
	require.NoError(t, err)
	require.NoError(t, f.q.EnqueueMany(t.Context(), []string{"p/1", "p/2", "p/3", "p/4"}, time.Now()))
	rep, err := w.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, map[queue.Outcome]int{queue.Refreshed: 1, queue.NoData: 1, queue.Failed: 2}, rep.Outcomes)
	st, err := f.q.Stats(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"p/3"}, st.PoisonedKeys, "not set: poisoned at once")
	require.Equal(t, 1, st.Delayed, "p/4 backs off")
	require.Equal(t, 1, st.Depth, "p/1 and p/2 are done, p/3 poisoned: only p/4 is queued")
}
