package cluster_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cluster"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// cutStore fails every lease call while cut: a gateway cut off from the
// store.
type cutStore struct {
	cluster.LeaseStore
	cut atomic.Bool
}

var errCut = errors.New("cut off")

func (s *cutStore) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if s.cut.Load() {
		return false, errCut
	}
	return s.LeaseStore.Acquire(ctx, name, owner, ttl)
}

func (s *cutStore) Release(ctx context.Context, name, owner string) error {
	if s.cut.Load() {
		return errCut
	}
	return s.LeaseStore.Release(ctx, name, owner)
}

type candidate struct {
	*cluster.Leader
	store *cutStore
	terms atomic.Int64 // Lead calls
	in    atomic.Int64 // Lead calls running
}

func start(t *testing.T, store cluster.LeaseStore, owner string, ttl time.Duration, both *atomic.Int64) *candidate {
	t.Helper()
	c := &candidate{store: &cutStore{LeaseStore: store}}
	l, err := cluster.Start(cluster.Options{Store: c.store, Name: "follow/test", Owner: owner, TTL: ttl,
		Lead: func(ctx context.Context) {
			c.terms.Add(1)
			c.in.Add(1)
			if both.Add(1) > 1 {
				t.Errorf("%s leads while another does", owner)
			}
			<-ctx.Done()
			both.Add(-1)
			c.in.Add(-1)
		}})
	require.NoError(t, err)
	c.Leader = l
	t.Cleanup(l.Close)
	return c
}

func leaders(cs ...*candidate) int {
	n := 0
	for _, c := range cs {
		if c.Leading() {
			n++
		}
	}
	return n
}

// One of two gateways leads; when it closes, the other takes over at once
// (the lease is given back); when the leader is cut off from the store, it
// stops before its lease runs out and the other takes over after it has.
func TestOneLeaderAndTakeover(t *testing.T) {
	t.Parallel()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	takeover(t, s, 2*time.Second)
}

// The same on Cassandra, where the gateways that do not lead look with a
// plain read.
func TestOneLeaderOnCassandra(t *testing.T) {
	t.Parallel()
	ks := cassandratest.Keyspace(t)
	s, err := cassandra.Open(t.Context(), ks)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	var _ cluster.HolderReader = s
	takeover(t, s, 3*time.Second)
}

// And on PostgreSQL.
func TestOneLeaderOnPostgres(t *testing.T) {
	t.Parallel()
	s := pgstoretest.Open(t)
	var _ cluster.HolderReader = s
	takeover(t, s, 2*time.Second)
}

func takeover(t *testing.T, s cache.Store, ttl time.Duration) {
	var both atomic.Int64
	a := start(t, s, "a", ttl, &both)
	require.Eventually(t, func() bool { return leaders(a) == 1 }, time.Minute, 5*time.Millisecond)
	b := start(t, s, "b", ttl, &both)
	c := start(t, s, "c", ttl, &both)
	// Never two at once (start's Lead counts them); on a busy machine a
	// renewal may come late and the lease move on, so which one leads is
	// not asserted, only that one does.
	require.Eventually(t, func() bool { return leaders(a, b, c) == 1 }, time.Minute, 5*time.Millisecond)

	a.Close()
	require.Eventually(t, func() bool { return leaders(b, c) == 1 }, time.Minute, 5*time.Millisecond, "another took over")
	next, other := b, c
	if c.Leading() {
		next, other = c, b
	}
	next.store.cut.Store(true)
	require.Eventually(t, func() bool { return !next.Leading() && next.in.Load() == 0 }, time.Minute, 5*time.Millisecond, "the cut-off leader stopped")
	// Leading turns true as the term begins, before Lead runs on its own
	// goroutine: wait for Lead too.
	require.Eventually(t, func() bool { return other.Leading() && other.in.Load() == 1 }, time.Minute, 5*time.Millisecond, "the other took over once the lease ran out")
	assert.Positive(t, other.terms.Load())
}

// A gateway that is not eligible (cut off from the bus) does not take the
// lease, and one that leads gives it up as soon as it is not: another
// eligible gateway takes over without waiting for the lease to run out.
func TestOnlyEligibleLead(t *testing.T) {
	t.Parallel()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	var both atomic.Int64
	var aOK, bOK atomic.Bool
	aOK.Store(true)
	start := func(owner string, ok *atomic.Bool) *cluster.Leader {
		l, err := cluster.Start(cluster.Options{Store: s, Name: "follow/test", Owner: owner, TTL: 9 * time.Second, Eligible: ok.Load,
			Lead: func(ctx context.Context) {
				if both.Add(1) > 1 {
					t.Errorf("%s leads while another does", owner)
				}
				<-ctx.Done()
				both.Add(-1)
			}})
		require.NoError(t, err)
		t.Cleanup(l.Close)
		return l
	}
	a, b := start("a", &aOK), start("b", &bOK)
	require.Eventually(t, a.Leading, time.Minute, 5*time.Millisecond)
	assert.False(t, b.Leading(), "b is not eligible")
	bOK.Store(true)
	aOK.Store(false)
	require.Eventually(t, func() bool { return b.Leading() && !a.Leading() }, time.Minute, 5*time.Millisecond)
}
