// Package queuetest is the contract suite every queue.Store must pass. A
// backend's tests call Run with a function that opens a fresh, empty queue
// using the Config the suite gives it (its clock is the suite's, so leases and
// backoff run out without sleeping). The suite is the same for every backend
// and is never edited for one.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/queue"
)

// Open returns an empty queue for one test, isolated from every other
// test's queue, whose rows follow cfg. The test ends with the queue unused;
// the backend's own cleanup (t.Cleanup) closes what it opened.
type Open func(t *testing.T, cfg queue.Config) queue.Store

type env struct {
	q     queue.Store
	clock *cachetest.Clock
	cfg   queue.Config
}

// t0 is a whole second, so stores that keep milliseconds lose nothing.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// Run exercises the queue.Store contract against queues made by open.
func Run(t *testing.T, open Open) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, env)
	}{
		{"GetMissing", testGetMissing},
		{"EnqueueMerges", testEnqueueMerges},
		{"EnqueueMany", testEnqueueMany},
		{"OddKeys", testOddKeys},
		{"ClaimMostRequestedFirst", testClaimMostRequested},
		{"ClaimLargeQueueEarliestFirst", testClaimLargeEarliest},
		{"ClaimLargeQueueAboveAverage", testClaimLargeAboveAverage},
		{"ClaimLargeQueueHotKeyEarliest", testClaimLargeHotKey},
		{"ClaimIsExclusive", testClaimExclusive},
		{"ConcurrentClaimsNeverShare", testConcurrentClaims},
		{"DoneRemoves", testDoneRemoves},
		{"DoneByOtherWorker", testDoneByOtherWorker},
		{"DoneKeepsLaterRequests", testDoneKeepsLaterRequests},
		{"LeaseRunsOut", testLeaseRunsOut},
		{"ReleaseBacksOff", testReleaseBacksOff},
		{"PoisonAfterMaxAttempts", testPoison},
		{"PermanentFailurePoisons", testPermanent},
		{"DeadWorkersPoison", testDeadWorkersPoison},
		{"RemoveRevivesPoisoned", testRemoveRevives},
		{"Stats", testStats},
		{"EnqueueKeepsTheTrace", testTrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := cachetest.NewClock(t0)
			cfg := queue.Config{
				Clock:       clock,
				MaxAttempts: 3,
				Backoff:     func(n int) time.Duration { return time.Duration(n) * time.Minute },
			}
			q := open(t, cfg)
			tc.fn(t, env{q: q, clock: clock, cfg: cfg})
		})
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func keys(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// A request made in a trace leaves its traceparent in the row, for the
// refresh to link to; the last such request wins, and one made outside a
// trace leaves it alone. It survives a claim, for the worker.
func testTrace(t *testing.T, e env) {
	traced := func(spanID string) context.Context {
		tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
		sid, _ := trace.SpanIDFromHex(spanID)
		return trace.ContextWithSpanContext(ctx(t), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	}
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	it, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Empty(t, it.Trace, "a request outside a trace")
	require.NoError(t, e.q.EnqueueMany(traced("00f067aa0ba902b7"), []string{"a/1", "a/2"}, t0))
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0.Add(time.Second)))
	for _, k := range []string{"a/1", "a/2"} {
		it, err := e.q.Get(ctx(t), k)
		require.NoError(t, err)
		require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", it.Trace, k)
	}
	require.NoError(t, e.q.Enqueue(traced("00f067aa0ba902b8"), "a/1", t0.Add(2*time.Second)))
	items, err := e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	got := map[string]string{}
	for _, it := range items {
		got[it.Key] = it.Trace
	}
	require.Equal(t, map[string]string{
		"a/1": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01",
		"a/2": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}, got)
}

func testGetMissing(t *testing.T, e env) {
	_, err := e.q.Get(ctx(t), "nothing/1")
	require.ErrorIs(t, err, queue.ErrNotFound)
	items, err := e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items)
	require.ErrorIs(t, e.q.Done(ctx(t), "w1", "nothing/1", 1), queue.ErrNotClaimed)
	require.ErrorIs(t, e.q.Release(ctx(t), "w1", "nothing/1", 1, errors.New("x")), queue.ErrNotClaimed)
}

func testEnqueueMerges(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0.Add(time.Second)))
	v1, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0.Add(2*time.Second)))
	it, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Equal(t, "a/1", it.Key)
	require.EqualValues(t, 3, it.Requests)
	require.True(t, it.FirstRequested.Equal(t0), "first request %v", it.FirstRequested)
	require.True(t, it.LastRequested.Equal(t0.Add(2*time.Second)), "last request %v", it.LastRequested)
	require.NotEqual(t, v1.Version, it.Version, "every change of a row changes its version")
	require.Empty(t, it.Worker)
}

func testEnqueueMany(t *testing.T, e env) {
	ks := []string{"a/1", "a/2", "a/3"}
	require.NoError(t, e.q.EnqueueMany(ctx(t), ks, t0))
	require.NoError(t, e.q.EnqueueMany(ctx(t), ks[:1], t0))
	require.NoError(t, e.q.EnqueueMany(ctx(t), nil, t0))
	for k, want := range map[string]int64{"a/1": 2, "a/2": 1, "a/3": 1} {
		it, err := e.q.Get(ctx(t), k)
		require.NoError(t, err)
		require.Equal(t, want, it.Requests, k)
	}
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 3, st.Depth)
}

func testOddKeys(t *testing.T, e env) {
	ks := []string{"s/with%2Fslash", "s/100%25", "s/ünïcödé ✓", "s/x y", "plain"}
	require.NoError(t, e.q.EnqueueMany(ctx(t), ks, t0))
	items, err := e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	require.ElementsMatch(t, ks, keys(items))
	for _, it := range items {
		require.NoError(t, e.q.Done(ctx(t), "w1", it.Key, it.Version))
	}
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Zero(t, st.Depth)
}

// enqueueN requests key n times, at times at, at+1ms, ...
func enqueueN(t *testing.T, q queue.Store, key string, n int, at time.Time) {
	t.Helper()
	for i := range n {
		require.NoError(t, q.Enqueue(ctx(t), key, at.Add(time.Duration(i)*time.Millisecond)))
	}
}

func testClaimMostRequested(t *testing.T, e env) {
	// A small queue: most requested first, ties to the earliest.
	enqueueN(t, e.q, "k/old", 1, t0)
	enqueueN(t, e.q, "k/hot", 5, t0.Add(3*time.Second))
	enqueueN(t, e.q, "k/warm", 3, t0.Add(2*time.Second))
	enqueueN(t, e.q, "k/warm2", 3, t0.Add(time.Second))
	items, err := e.q.Claim(ctx(t), "w1", 3, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"k/hot", "k/warm2", "k/warm"}, keys(items))
	for _, it := range items {
		require.Equal(t, "w1", it.Worker)
		require.True(t, it.LeaseUntil.Equal(t0.Add(time.Minute)), "lease until %v", it.LeaseUntil)
	}
	items, err = e.q.Claim(ctx(t), "w1", 3, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"k/old"}, keys(items))
}

// largeQueue fills more than queue.SmallQueueFactor rows for a batch of 1:
// rows n/0000 ... requested once each, 1 ms apart, starting at t0+1s.
func largeQueue(t *testing.T, q queue.Store, n int) []string {
	t.Helper()
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("n/%04d", i)
		require.NoError(t, q.Enqueue(ctx(t), ks[i], t0.Add(time.Second+time.Duration(i)*time.Millisecond)))
	}
	return ks
}

func testClaimLargeEarliest(t *testing.T, e env) {
	// Counts are close (max - min < 5): earliest first, even before a key
	// asked for 4 more times.
	ks := largeQueue(t, e.q, queue.SmallQueueFactor+20)
	enqueueN(t, e.q, ks[50], 4, t0.Add(time.Hour))
	items, err := e.q.Claim(ctx(t), "w1", 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{ks[0]}, keys(items))
}

func testClaimLargeAboveAverage(t *testing.T, e env) {
	// Half the keys asked 6 times, half once: max - min = 5, max - avg =
	// 2.5, so the earliest at or above the average wins over older keys.
	ks := largeQueue(t, e.q, queue.SmallQueueFactor+20)
	for i := 1; i < len(ks); i += 2 {
		require.NoError(t, e.q.EnqueueMany(ctx(t), []string{ks[i]}, t0.Add(time.Hour)))
	}
	for range 4 {
		var odd []string
		for i := 1; i < len(ks); i += 2 {
			odd = append(odd, ks[i])
		}
		require.NoError(t, e.q.EnqueueMany(ctx(t), odd, t0.Add(time.Hour)))
	}
	items, err := e.q.Claim(ctx(t), "w1", 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{ks[1]}, keys(items))
}

func testClaimLargeHotKey(t *testing.T, e env) {
	// One key far above the rest (max - avg > 3): earliest first, not the
	// hot key (KCK's rule 4).
	ks := largeQueue(t, e.q, queue.SmallQueueFactor+20)
	enqueueN(t, e.q, ks[70], 20, t0.Add(time.Hour))
	items, err := e.q.Claim(ctx(t), "w1", 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{ks[0]}, keys(items))
}

func testClaimExclusive(t *testing.T, e env) {
	require.NoError(t, e.q.EnqueueMany(ctx(t), []string{"a/1", "a/2"}, t0))
	first, err := e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, first, 2)
	second, err := e.q.Claim(ctx(t), "w2", 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, second, "rows under a running lease are not claimed again")
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 2, st.Claimed)
}

func testConcurrentClaims(t *testing.T, e env) {
	const n, workers = 200, 5
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("c/%d", i)
	}
	require.NoError(t, e.q.EnqueueMany(ctx(t), ks, t0))
	var (
		mu  sync.Mutex
		got = map[string]string{}
		wg  sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", w)
			for {
				items, err := e.q.Claim(ctx(t), name, 7, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(items) == 0 {
					return
				}
				mu.Lock()
				for _, it := range items {
					if prev, dup := got[it.Key]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("%s claimed by %s and %s", it.Key, prev, name)
						return
					}
					got[it.Key] = name
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, got, n)
}

func claimOne(t *testing.T, q queue.Store, worker string) queue.Item {
	t.Helper()
	items, err := q.Claim(ctx(t), worker, 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1)
	return items[0]
}

func testDoneRemoves(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	it := claimOne(t, e.q, "w1")
	got, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Equal(t, it.Version, got.Version, "Claim returns the row as stored")
	require.NoError(t, e.q.Done(ctx(t), "w1", "a/1", it.Version))
	_, err = e.q.Get(ctx(t), "a/1")
	require.ErrorIs(t, err, queue.ErrNotFound)
	require.ErrorIs(t, e.q.Done(ctx(t), "w1", "a/1", it.Version), queue.ErrNotClaimed)
}

func testDoneByOtherWorker(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	it := claimOne(t, e.q, "w1")
	require.ErrorIs(t, e.q.Done(ctx(t), "w2", "a/1", it.Version), queue.ErrNotClaimed)
	require.ErrorIs(t, e.q.Release(ctx(t), "w2", "a/1", it.Version, errors.New("x")), queue.ErrNotClaimed)
	got, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Equal(t, "w1", got.Worker)
}

func testDoneKeepsLaterRequests(t *testing.T, e env) {
	enqueueN(t, e.q, "a/1", 3, t0)
	it := claimOne(t, e.q, "w1")
	// Two requests arrive while the refresh runs: it may have read the data
	// before the changes they announce, so they stay queued.
	e.clock.Advance(time.Second)
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0.Add(2*time.Second)))
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0.Add(3*time.Second)))
	require.NoError(t, e.q.Done(ctx(t), "w1", "a/1", it.Version))
	got, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Empty(t, got.Worker)
	require.EqualValues(t, 2, got.Requests)
	require.True(t, got.FirstRequested.Equal(t0.Add(2*time.Second)), "first request %v", got.FirstRequested)
	require.True(t, got.LastRequested.Equal(t0.Add(3*time.Second)), "last request %v", got.LastRequested)
	again := claimOne(t, e.q, "w2")
	require.NoError(t, e.q.Done(ctx(t), "w2", "a/1", again.Version))
	_, err = e.q.Get(ctx(t), "a/1")
	require.ErrorIs(t, err, queue.ErrNotFound)
}

func testLeaseRunsOut(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	dead := claimOne(t, e.q, "dead")
	e.clock.Advance(59 * time.Second)
	items, err := e.q.Claim(ctx(t), "w2", 1, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items, "the lease still runs")
	e.clock.Advance(time.Second)
	it := claimOne(t, e.q, "w2")
	require.Equal(t, "a/1", it.Key)
	require.Equal(t, 1, it.Attempts, "a lease that ran out counts as a failed attempt")
	require.Contains(t, it.LastError, "dead")
	// The dead worker comes back late: its claim is gone.
	require.ErrorIs(t, e.q.Done(ctx(t), "dead", "a/1", dead.Version), queue.ErrNotClaimed)
	require.NoError(t, e.q.Done(ctx(t), "w2", "a/1", it.Version))
}

func testReleaseBacksOff(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "a/1", t0))
	it := claimOne(t, e.q, "w1")
	require.NoError(t, e.q.Release(ctx(t), "w1", "a/1", it.Version, errors.New("db down")))
	got, err := e.q.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, "db down", got.LastError)
	require.Empty(t, got.Worker)
	require.True(t, got.NotBefore.Equal(t0.Add(time.Minute)), "not before %v", got.NotBefore)
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 1, st.Delayed)
	items, err := e.q.Claim(ctx(t), "w1", 1, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items, "backing off")
	e.clock.Advance(time.Minute)
	it = claimOne(t, e.q, "w1")
	require.NoError(t, e.q.Done(ctx(t), "w1", "a/1", it.Version))
}

func testPoison(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "bad/1", t0))
	for i := range e.cfg.MaxAttempts {
		it := claimOne(t, e.q, "w1")
		require.Equal(t, "bad/1", it.Key, "attempt %d", i+1)
		require.NoError(t, e.q.Release(ctx(t), "w1", "bad/1", it.Version, fmt.Errorf("boom %d", i+1)))
		e.clock.Advance(time.Hour)
	}
	got, err := e.q.Get(ctx(t), "bad/1")
	require.NoError(t, err)
	require.True(t, got.Poisoned)
	require.Equal(t, e.cfg.MaxAttempts, got.Attempts)
	require.Equal(t, fmt.Sprintf("boom %d", e.cfg.MaxAttempts), got.LastError)
	items, err := e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items, "a poisoned key is not claimed")
	// More requests are counted but do not bring it back.
	require.NoError(t, e.q.Enqueue(ctx(t), "bad/1", t0.Add(2*time.Hour)))
	items, err = e.q.Claim(ctx(t), "w1", 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items)
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 1, st.Poisoned)
	require.Equal(t, []string{"bad/1"}, st.PoisonedKeys)
	require.Zero(t, st.Depth, "poisoned rows are not in the depth")
	// Other keys go on.
	require.NoError(t, e.q.Enqueue(ctx(t), "good/1", t0))
	require.Equal(t, "good/1", claimOne(t, e.q, "w1").Key)
}

func testPermanent(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "nope/1", t0))
	it := claimOne(t, e.q, "w1")
	require.NoError(t, e.q.Release(ctx(t), "w1", "nope/1", it.Version, queue.Permanent(errors.New("unknown product"))))
	got, err := e.q.Get(ctx(t), "nope/1")
	require.NoError(t, err)
	require.True(t, got.Poisoned)
	require.Equal(t, 1, got.Attempts)
	require.Contains(t, got.LastError, "unknown product")
}

func testDeadWorkersPoison(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "crash/1", t0))
	for i := range e.cfg.MaxAttempts {
		it := claimOne(t, e.q, fmt.Sprintf("w%d", i))
		require.Equal(t, i, it.Attempts)
		e.clock.Advance(2 * time.Minute)
	}
	// The last lease ran out too: that was the MaxAttempts-th attempt.
	items, err := e.q.Claim(ctx(t), "w9", 1, time.Minute)
	require.NoError(t, err)
	require.Empty(t, items)
	got, err := e.q.Get(ctx(t), "crash/1")
	require.NoError(t, err)
	require.True(t, got.Poisoned)
}

func testRemoveRevives(t *testing.T, e env) {
	require.NoError(t, e.q.Enqueue(ctx(t), "bad/1", t0))
	it := claimOne(t, e.q, "w1")
	require.NoError(t, e.q.Release(ctx(t), "w1", "bad/1", it.Version, queue.Permanent(errors.New("x"))))
	require.NoError(t, e.q.Remove(ctx(t), "bad/1"))
	require.NoError(t, e.q.Remove(ctx(t), "bad/1"), "removing a missing row is fine")
	require.NoError(t, e.q.Enqueue(ctx(t), "bad/1", t0))
	it = claimOne(t, e.q, "w1")
	require.Zero(t, it.Attempts)
}

func testStats(t *testing.T, e env) {
	st, err := e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Zero(t, st.Depth)
	require.True(t, st.OldestRequest.IsZero())
	require.Zero(t, st.OldestAge(t0))

	require.NoError(t, e.q.Enqueue(ctx(t), "s/1", t0.Add(-time.Minute)))
	enqueueN(t, e.q, "s/2", 4, t0)
	require.NoError(t, e.q.Enqueue(ctx(t), "s/3", t0))
	it := claimOne(t, e.q, "w1") // s/2, the most requested
	require.Equal(t, "s/2", it.Key)
	st, err = e.q.Stats(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 3, st.Depth)
	require.Equal(t, 1, st.Claimed)
	require.EqualValues(t, 4, st.MaxRequests)
	require.True(t, st.OldestRequest.Equal(t0.Add(-time.Minute)), "oldest %v", st.OldestRequest)
	require.Equal(t, time.Minute, st.OldestAge(e.clock.Now()))
}
