package cassandra_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/queue/queuetest"
)

// The queue tests share one keyspace (migrating one takes seconds) and
// keep apart by queue name: every test of the contract suite gets its own.
func TestQueue(t *testing.T) {
	t.Parallel()
	cfg := keyspace(t)
	s := open(t, cfg)
	t.Cleanup(func() { _ = s.Close() })
	t.Run("Contract", func(t *testing.T) {
		t.Parallel()
		queuetest.Run(t, func(t *testing.T, qc queue.Config) queue.Store {
			q, err := s.QueueNamed(t.Name(), qc)
			require.NoError(t, err)
			return q
		})
	})
	t.Run("Names", func(t *testing.T) {
		t.Parallel()
		testQueueNames(t, s)
	})
	t.Run("TwoGatewaysNeverShare", func(t *testing.T) {
		t.Parallel()
		testTwoGateways(t, cfg)
	})
	t.Run("EnqueueWhileClaiming", func(t *testing.T) {
		t.Parallel()
		testEnqueueWhileClaiming(t, cfg)
	})
}

// gatewayQueues opens the queue named after t in n sessions, as n gateways
// would.
func gatewayQueues(t *testing.T, cfg cassandra.Config, n int, qc queue.Config) []*cassandra.Queue {
	t.Helper()
	var qs []*cassandra.Queue
	for range n {
		s := open(t, cfg)
		t.Cleanup(func() { _ = s.Close() })
		q, err := s.QueueNamed(t.Name(), qc)
		require.NoError(t, err)
		qs = append(qs, q)
	}
	return qs
}

func testQueueNames(t *testing.T, s *cassandra.Store) {
	def, err := s.Queue(queue.Config{})
	require.NoError(t, err)
	other, err := s.QueueNamed(t.Name()+"/other", queue.Config{})
	require.NoError(t, err)
	_, err = s.QueueNamed("", queue.Config{})
	require.Error(t, err)
	_, err = s.Queue(queue.Config{MaxAttempts: -1})
	require.Error(t, err)

	require.NoError(t, def.Enqueue(ctx(t), "a/1", time.Now()))
	_, err = other.Get(ctx(t), "a/1")
	require.ErrorIs(t, err, queue.ErrNotFound)
	st, err := other.Stats(ctx(t))
	require.NoError(t, err)
	require.Zero(t, st.Depth)
	again, err := s.QueueNamed(cassandra.DefaultQueue, queue.Config{})
	require.NoError(t, err)
	it, err := again.Get(ctx(t), "a/1")
	require.NoError(t, err)
	require.EqualValues(t, 1, it.Requests)
}

// Two gateways, each with its own session, drain one queue with several
// workers each, marking every row done: no row is claimed twice, both take
// part, and nothing is left.
func testTwoGateways(t *testing.T, cfg cassandra.Config) {
	const n, workersPerGateway, batch = 150, 3, 5
	clock := cachetest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	gateways := gatewayQueues(t, cfg, 2, queue.Config{Clock: clock})
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("g/%d", i)
	}
	require.NoError(t, gateways[0].EnqueueMany(ctx(t), ks, clock.Now()))

	var (
		mu    sync.Mutex
		owner = map[string]string{}
		per   = map[int]int{}
	)
	c := ctx(t)
	var g errgroup.Group
	for gw, q := range gateways {
		for w := range workersPerGateway {
			name := fmt.Sprintf("gw%d-w%d", gw, w)
			g.Go(func() error {
				for {
					items, err := q.Claim(c, name, batch, time.Minute)
					if err != nil || len(items) == 0 {
						return err
					}
					mu.Lock()
					for _, it := range items {
						if prev, dup := owner[it.Key]; dup {
							mu.Unlock()
							return fmt.Errorf("%s claimed by %s and %s", it.Key, prev, name)
						}
						owner[it.Key] = name
						per[gw]++
					}
					mu.Unlock()
					for _, it := range items {
						if err := q.Done(c, name, it.Key, it.Version); err != nil {
							return err
						}
					}
				}
			})
		}
	}
	require.NoError(t, g.Wait())
	require.Len(t, owner, n)
	t.Logf("rows per gateway: %v", per)
	assert.Positive(t, per[0], "both gateways took part")
	assert.Positive(t, per[1], "both gateways took part")
	for _, q := range gateways {
		st, err := q.Stats(ctx(t))
		require.NoError(t, err)
		require.Zero(t, st.Depth)
	}
}

// Requests for the keys being claimed keep arriving from two gateways
// while workers of both claim and finish them: every change of a row races
// with others. No row is held by two workers at once, the requests merged
// during a refresh keep their row queued (Config.Done), and once the
// requests stop the workers drain the queue.
func testEnqueueWhileClaiming(t *testing.T, cfg cassandra.Config) {
	const keys, requests, workers, batch = 40, 120, 6, 3
	gateways := gatewayQueues(t, cfg, 2, queue.Config{})
	ks := make([]string, keys)
	for i := range ks {
		ks[i] = fmt.Sprintf("hot/%d", i)
	}
	c := ctx(t)
	require.NoError(t, gateways[0].EnqueueMany(c, ks, time.Now()))

	var enqueuers errgroup.Group
	for gw, q := range gateways {
		enqueuers.Go(func() error {
			for i := range requests {
				if err := q.Enqueue(c, ks[(i*7+gw)%keys], time.Now()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	requestsDone := make(chan struct{})
	var enqErr error
	go func() { enqErr = enqueuers.Wait(); close(requestsDone) }()

	var (
		mu    sync.Mutex
		held  = map[string]string{}
		total int
	)
	var g errgroup.Group
	for w := range workers {
		q, name := gateways[w%2], fmt.Sprintf("w%d", w)
		g.Go(func() error {
			for {
				finished := false
				select {
				case <-requestsDone:
					finished = true
				default:
				}
				items, err := q.Claim(c, name, batch, time.Minute)
				if err != nil {
					return err
				}
				if len(items) == 0 {
					if finished {
						return nil
					}
					// Poll: more requests are on their way.
					select {
					case <-requestsDone:
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				mu.Lock()
				total += len(items)
				for _, it := range items {
					if other, dup := held[it.Key]; dup {
						mu.Unlock()
						return fmt.Errorf("%s held by %s and %s", it.Key, other, name)
					}
					held[it.Key] = name
				}
				mu.Unlock()
				for _, it := range items {
					// Let go first: once Done returns, another worker may
					// take a row kept for later requests.
					mu.Lock()
					delete(held, it.Key)
					mu.Unlock()
					if err := q.Done(c, name, it.Key, it.Version); err != nil {
						return err
					}
				}
			}
		})
	}
	require.NoError(t, g.Wait())
	<-requestsDone
	require.NoError(t, enqErr)
	t.Logf("%d claims for %d keys and %d requests", total, keys, keys+2*requests)
	require.GreaterOrEqual(t, total, keys)
	st, err := gateways[1].Stats(c)
	require.NoError(t, err)
	require.Zero(t, st.Depth)
}

// dumpEntries are entries of every shape: with and without expiries, a
// compressed value, odd keys. Times are whole microseconds, as stored.
func dumpEntries(now time.Time) []cache.Entry {
	now = now.UTC().Truncate(time.Microsecond)
	v := uint64(now.UnixMicro())
	big := []byte(`"` + strings.Repeat("the silent orchard ", 200) + `"`)
	return []cache.Entry{
		{Key: "a/1", Value: []byte(`{"x":1}`), Version: v, ComputedAt: now},
		{Key: "b/with%2Fslash", Value: []byte(`[1,2]`), Version: v + 1, ComputedAt: now, StaleAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)},
		{Key: "s/ünïcödé ✓", Value: []byte(`"s"`), Version: v + 2, ComputedAt: now.Add(-time.Second), StaleAt: now.Add(-time.Millisecond)},
		{Key: "big/1", Value: big, Version: v + 3, ComputedAt: now},
	}
}

func scanAll(t *testing.T, s cache.Scanner) []cache.Entry {
	t.Helper()
	var out []cache.Entry
	require.NoError(t, s.Scan(ctx(t), func(e cache.Entry) error {
		out = append(out, e)
		return nil
	}))
	slices.SortFunc(out, func(a, b cache.Entry) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

func requireSameEntries(t *testing.T, want, got []cache.Entry) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Key, g.Key)
		require.Equal(t, w.Value, g.Value, w.Key)
		require.Equal(t, w.Version, g.Version, w.Key)
		require.True(t, w.ComputedAt.Equal(g.ComputedAt), "%s computed at %v, want %v", w.Key, g.ComputedAt, w.ComputedAt)
		require.True(t, w.StaleAt.Equal(g.StaleAt), "%s stale at %v, want %v", w.Key, g.StaleAt, w.StaleAt)
		require.True(t, w.ExpiresAt.Equal(g.ExpiresAt), "%s expires at %v, want %v", w.Key, g.ExpiresAt, w.ExpiresAt)
	}
}

// One keyspace holds entries of every kind: live ones, a deleted one, one a
// deletion did not reach (older than the stored version), and one past its
// hard expiry that Cassandra still holds (TTLs are whole seconds).
func TestScanAndDump(t *testing.T) {
	t.Parallel()
	s := open(t, keyspace(t))
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	v := uint64(now.UnixMicro())

	live := dumpEntries(now)
	for _, e := range live {
		require.NoError(t, s.Put(ctx(t), e))
	}

	deleted := cache.Entry{Key: "deleted/1", Value: []byte(`1`), Version: v, ComputedAt: now}
	require.NoError(t, s.Put(ctx(t), deleted))
	require.NoError(t, s.Delete(ctx(t), deleted.Key, deleted.Version))

	kept := cache.Entry{Key: "kept/1", Value: []byte(`2`), Version: v + 10, ComputedAt: now}
	require.NoError(t, s.Put(ctx(t), kept))
	require.NoError(t, s.Delete(ctx(t), kept.Key, v), "a deletion older than the value")
	live = append(live, kept)

	// Written as a Put writes, with the hard expiry already behind.
	require.NoError(t, s.Session().Query(`INSERT INTO cache_entries (key, value, codec, version, computed_at, stale_at, expires_at)
		VALUES (?, ?, 0, ?, ?, 0, ?) USING TIMESTAMP ? AND TTL 60`,
		"expired/1", []byte(`3`), int64(v), now.UnixMicro(), now.Add(-time.Second).UnixMicro(), int64(v)).ExecContext(ctx(t)))
	_, err := s.Get(ctx(t), "expired/1")
	require.ErrorIs(t, err, cache.ErrNotFound)
	slices.SortFunc(live, func(a, b cache.Entry) int { return cmp.Compare(a.Key, b.Key) })

	// Scan yields what Get returns, and nothing else.
	t.Run("ScanSkipsDeletedAndExpired", func(t *testing.T) {
		requireSameEntries(t, live, scanAll(t, s))
	})

	t.Run("ScanStopsAtError", func(t *testing.T) {
		stop := errors.New("stop")
		seen := 0
		err := s.Scan(ctx(t), func(cache.Entry) error {
			seen++
			if seen == 3 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		require.Equal(t, 3, seen)
	})

	// A dump of Cassandra loads into the embedded store with every entry as
	// it was, and a dump of that gives the same lines back.
	t.Run("DumpLoadsIntoBolt", func(t *testing.T) {
		var dump bytes.Buffer
		n, err := cache.Dump(ctx(t), s, &dump)
		require.NoError(t, err)
		require.Equal(t, len(live), n)

		dst, err := bolt.Open(t.TempDir(), bolt.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = dst.Close() })
		n, err = cache.Load(ctx(t), dst, bytes.NewReader(dump.Bytes()))
		require.NoError(t, err)
		require.Equal(t, len(live), n)
		requireSameEntries(t, live, scanAll(t, dst))

		var again bytes.Buffer
		_, err = cache.Dump(ctx(t), dst, &again)
		require.NoError(t, err)
		require.Equal(t, sortedLines(dump.String()), sortedLines(again.String()))
	})

	// Last, as it adds entries: more than a page.
	t.Run("ScanPages", func(t *testing.T) {
		var g errgroup.Group
		g.SetLimit(8)
		c := ctx(t)
		for i := range 1200 {
			e := cache.Entry{Key: fmt.Sprintf("many/%04d", i), Value: fmt.Appendf(nil, "%d", i), Version: v, ComputedAt: now}
			live = append(live, e)
			g.Go(func() error { return s.Put(c, e) })
		}
		require.NoError(t, g.Wait())
		slices.SortFunc(live, func(a, b cache.Entry) int { return cmp.Compare(a.Key, b.Key) })
		requireSameEntries(t, live, scanAll(t, s))
	})
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return lines
}
