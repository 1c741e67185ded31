package cassandra_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/primers"
)

// ctx is the test's context. It has no deadline of its own: a workload's
// time depends on the machine's load, every driver request has its own
// timeout, and go test -timeout catches a hang.
func ctx(t *testing.T) context.Context {
	return t.Context()
}

// keyspace is one migrated keyspace shared by this package's tests; the
// contract suite makes its keys unique per test.
func keyspace(t *testing.T) cassandra.Config {
	t.Helper()
	return cassandratest.Keyspace(t)
}

func open(t *testing.T, cfg cassandra.Config) *cassandra.Store {
	t.Helper()
	s, err := cassandra.Open(ctx(t), cfg)
	require.NoError(t, err)
	return s
}

func TestContract(t *testing.T) {
	cfg := keyspace(t)
	cachetest.Run(t, func(t *testing.T) cache.Store { return open(t, cfg) })
}

// Two gateways write one key with different versions in both orders; both
// replicas' views converge on the higher version.
func TestWritersConvergeOnHighestVersion(t *testing.T) {
	cfg := keyspace(t)
	a, b := open(t, cfg), open(t, cfg)
	defer a.Close()
	defer b.Close()
	for i := range 20 {
		key := fmt.Sprintf("conv/%d/%d", i, time.Now().UnixNano())
		lo := cache.Entry{Key: key, Value: []byte(`"lo"`), Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}
		hi := lo
		hi.Value, hi.Version = []byte(`"hi"`), lo.Version+uint64(1+rand.IntN(1000))
		var wg sync.WaitGroup
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		wg.Go(func() { require.NoError(t, first.Put(ctx(t), lo)) })
		wg.Go(func() { require.NoError(t, second.Put(ctx(t), hi)) })
		wg.Wait()
		for _, s := range []*cassandra.Store{a, b} {
			got, err := s.Get(ctx(t), key)
			require.NoError(t, err)
			assert.Equal(t, hi.Version, got.Version)
			assert.Equal(t, `"hi"`, string(got.Value))
		}
	}
}

// A large value is compressed on the wire and on disk and comes back intact.
func TestLargeValueIsCompressed(t *testing.T) {
	cfg := keyspace(t)
	s := open(t, cfg)
	defer s.Close()
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range 20000 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"id":%d,"title":"The Silent Orchard","year":%d}`, i, 1950+i%70)
	}
	buf.WriteByte(']')
	e := cache.Entry{Key: fmt.Sprintf("big/%d", time.Now().UnixNano()), Value: buf.Bytes(), Version: uint64(time.Now().UnixMicro()), ComputedAt: time.Now()}
	require.NoError(t, s.Put(ctx(t), e))
	got, err := s.Get(ctx(t), e.Key)
	require.NoError(t, err)
	assert.Equal(t, e.Value, got.Value)

	var stored []byte
	var codec int8
	require.NoError(t, s.Session().Query(`SELECT value, codec FROM cache_entries WHERE key = ?`, e.Key).Scan(&stored, &codec))
	assert.Equal(t, int8(1), codec)
	assert.Less(t, len(stored)*5, len(e.Value), "compressed %d -> %d bytes", len(e.Value), len(stored))
	t.Logf("%d bytes stored as %d (%.1fx)", len(e.Value), len(stored), float64(len(e.Value))/float64(len(stored)))
}

func TestLeaseAcrossSessions(t *testing.T) {
	cfg := keyspace(t)
	a, b := open(t, cfg), open(t, cfg)
	defer a.Close()
	defer b.Close()
	name := fmt.Sprintf("lease/%d", time.Now().UnixNano())
	got, err := a.Acquire(ctx(t), name, "gw-a", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	got, err = b.Acquire(ctx(t), name, "gw-b", time.Minute)
	require.NoError(t, err)
	require.False(t, got, "held by a")
	require.NoError(t, b.Release(ctx(t), name, "gw-b"), "releasing someone else's lease is a no-op")
	got, err = b.Acquire(ctx(t), name, "gw-b", time.Minute)
	require.NoError(t, err)
	require.False(t, got)
	require.NoError(t, a.Release(ctx(t), name, "gw-a"))
	got, err = b.Acquire(ctx(t), name, "gw-b", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
}

func TestMigrateIsIdempotent(t *testing.T) {
	cfg := keyspace(t)
	for range 2 {
		require.NoError(t, cassandra.Migrate(ctx(t), cfg, cassandra.Replication{Factor: 1}))
	}
	s := open(t, cfg)
	defer s.Close()
	require.NoError(t, s.Ping(ctx(t)))
}

func TestOpenErrors(t *testing.T) {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := cassandra.Open(c, cassandra.Config{Hosts: []string{"127.0.0.1:1"}, ConnectTimeout: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot connect to 127.0.0.1:1")

	cfg := cassandratest.Config(t)
	cfg.Keyspace = "kck_never_migrated"
	_, err = cassandra.Open(c, cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "kck migrate")

	for _, bad := range []cassandra.Config{
		{},
		{Hosts: []string{"x"}, Keyspace: "bad-name"},
		{Hosts: []string{"x"}, Consistency: "MOSTLY"},
		{Hosts: []string{"x"}, SerialConsistency: "QUORUM"},
	} {
		_, err := cassandra.Open(c, bad)
		assert.ErrorContains(t, err, "cassandra config", "%+v", bad)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("KCK_CASSANDRA_HOSTS", " 127.0.0.1:9042, 127.0.0.2 ,")
	t.Setenv("KCK_CASSANDRA_KEYSPACE", "shop")
	t.Setenv("KCK_CASSANDRA_CONSISTENCY", "quorum")
	c := cassandra.ConfigFromEnv()
	assert.Equal(t, []string{"127.0.0.1:9042", "127.0.0.2"}, c.Hosts)
	assert.Equal(t, "shop", c.Keyspace)
	assert.Equal(t, "quorum", c.Consistency)
	assert.True(t, strings.EqualFold(c.WithDefaults().SerialConsistency, "LOCAL_SERIAL"))
}

// A gateway that loses Cassandra while running keeps serving what its
// in-process tier holds, still answers misses by computing, and counts the
// store's failures.
func TestCacheKeepsServingWhenCassandraIsLost(t *testing.T) {
	cfg := keyspace(t)
	s := open(t, cfg)
	reg := primers.NewRegistry()
	var runs atomic.Int64
	reg.MustRegister(primers.Product{Name: "sq", Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { runs.Add(1); return n * n, nil })})
	metrics := prometheus.NewRegistry()
	c, err := cache.New(cache.Options{Registry: reg, Store: s, Registerer: metrics})
	require.NoError(t, err)
	defer c.Close()
	hot, err := c.Get(ctx(t), "sq/7")
	require.NoError(t, err)

	require.NoError(t, s.Close()) // the cluster is gone for this gateway
	r, err := c.Get(ctx(t), "sq/7")
	require.NoError(t, err)
	assert.Equal(t, cache.TierMemory, r.Tier)
	assert.Equal(t, hot.Version, r.Version)
	r, err = c.Get(ctx(t), "sq/8")
	require.NoError(t, err, "a miss is still computed")
	assert.Equal(t, "64", string(r.Value))
	assert.Equal(t, int64(2), runs.Load())
	n, err := testutil.GatherAndCount(metrics, "kck_store_errors_total")
	require.NoError(t, err)
	assert.Positive(t, n, "store failures are counted")
	assert.Error(t, s.Ping(ctx(t)), "and /readyz would fail")
}

// The store counts its requests by kind: a Put reads the stored version
// and writes, a PutNew only writes, a lease is a lightweight transaction,
// and LeaseHolder a plain read. (A read may count twice: a speculative
// second attempt after 50 ms costs the cluster as much.)
func TestStoreCountsItsRequests(t *testing.T) {
	cfg := keyspace(t)
	s := open(t, cfg)
	defer s.Close()
	key := fmt.Sprintf("ops/%d", time.Now().UnixNano())
	check := func(what string, reads, writes, lwts uint64, f func()) {
		t.Helper()
		before := settled(s)
		f()
		after := s.Ops()
		if reads == 0 {
			assert.Equal(t, before.Reads, after.Reads, "%s: reads", what)
		} else {
			assert.Contains(t, []uint64{reads, reads + 1}, after.Reads-before.Reads, "%s: reads", what)
		}
		assert.Equal(t, writes, after.Writes-before.Writes, "%s: writes", what)
		assert.Equal(t, lwts, after.LWTs-before.LWTs, "%s: lightweight transactions", what)
	}
	e := cache.Entry{Key: key, Value: []byte(`1`), Version: 10, ComputedAt: time.Now()}
	check("put", 1, 1, 0, func() { require.NoError(t, s.Put(ctx(t), e)) })
	e.Version = 11
	check("put new", 0, 1, 0, func() { require.NoError(t, s.PutNew(ctx(t), e)) })
	check("get", 1, 0, 0, func() { _, err := s.Get(ctx(t), key); require.NoError(t, err) })
	check("acquire", 0, 0, 1, func() {
		ok, err := s.Acquire(ctx(t), "lease/"+key, "me", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
	})
	check("lease holder", 1, 0, 0, func() {
		holder, err := s.LeaseHolder(ctx(t), "lease/"+key)
		require.NoError(t, err)
		require.Equal(t, "me", holder)
	})
}

// settled is s's counts once they stop moving: a read's speculative second
// attempt is counted when it ends, which may be after the read returned.
func settled(s *cassandra.Store) cache.StoreOps {
	prev := s.Ops()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		cur := s.Ops()
		if cur == prev {
			return cur
		}
		prev = cur
	}
	return prev
}
