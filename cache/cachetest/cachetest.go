// Package cachetest is the contract suite every cache.Store must pass. A
// backend's tests call Run with a function that opens a fresh, empty store;
// the suite is the same for every backend and is never edited for one.
package cachetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
)

// Open returns a fresh store for one test. The suite closes it.
type Open func(t *testing.T) cache.Store

// Run exercises the cache.Store contract against stores made by open.
func Run(t *testing.T, open Open) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, cache.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"HigherVersionWins", testHigherVersionWins},
		{"ConcurrentWritersKeepHighest", testConcurrentWriters},
		{"Delete", testDelete},
		{"DeleteBlocksOlderPut", testDeleteBlocksOlderPut},
		{"DeleteKeepsNewer", testDeleteKeepsNewer},
		{"ExpiredNotReturned", testExpiredNotReturned},
		{"ExpiresLater", testExpiresLater},
		{"LargeValue", testLargeValue},
		{"OddKeys", testOddKeys},
		{"LeaseExclusive", testLeaseExclusive},
		{"LeaseRelease", testLeaseRelease},
		{"LeaseExpires", testLeaseExpires},
		{"LeaseRace", testLeaseRace},
		{"Ping", testPing},
		{"PutNew", testPutNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// uniq makes keys distinct per test, so that backends sharing one database
// across tests (a Cassandra keyspace) do not see each other's rows.
var seq atomic.Uint64

func uniq(_ *testing.T, base string) string {
	return fmt.Sprintf("%s/%d/%d", base, time.Now().UnixNano(), seq.Add(1))
}

func entry(key string, version uint64, value string) cache.Entry {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return cache.Entry{Key: key, Value: []byte(value), Version: version, ComputedAt: now}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func requireEntry(t *testing.T, s cache.Store, want cache.Entry) {
	t.Helper()
	got, err := s.Get(ctx(t), want.Key)
	require.NoError(t, err)
	require.Equal(t, want.Key, got.Key)
	require.Equal(t, string(want.Value), string(got.Value))
	require.Equal(t, want.Version, got.Version)
	require.True(t, want.ComputedAt.Equal(got.ComputedAt), "computedAt %v != %v", got.ComputedAt, want.ComputedAt)
	require.True(t, want.StaleAt.Equal(got.StaleAt), "staleAt %v != %v", got.StaleAt, want.StaleAt)
	require.True(t, want.ExpiresAt.Equal(got.ExpiresAt), "expiresAt %v != %v", got.ExpiresAt, want.ExpiresAt)
}

func requireMissing(t *testing.T, s cache.Store, key string) {
	t.Helper()
	_, err := s.Get(ctx(t), key)
	require.Error(t, err)
	require.True(t, errors.Is(err, cache.ErrNotFound), "want ErrNotFound, got %v", err)
}

func testGetMissing(t *testing.T, s cache.Store) {
	requireMissing(t, s, uniq(t, "missing"))
}

func testPutGet(t *testing.T, s cache.Store) {
	e := entry(uniq(t, "put"), 10, `{"a":[1,2,3]}`)
	e.StaleAt = e.ComputedAt.Add(time.Hour)
	e.ExpiresAt = e.ComputedAt.Add(2 * time.Hour)
	require.NoError(t, s.Put(ctx(t), e))
	requireEntry(t, s, e)

	// No expiry at all is kept as zero times.
	e2 := entry(uniq(t, "put"), 11, `"plain"`)
	require.NoError(t, s.Put(ctx(t), e2))
	requireEntry(t, s, e2)
}

func testHigherVersionWins(t *testing.T, s cache.Store) {
	key := uniq(t, "ver")
	v2 := entry(key, 2000, `"two"`)
	require.NoError(t, s.Put(ctx(t), v2))
	// An older write arriving late (a slow primer) is dropped.
	require.NoError(t, s.Put(ctx(t), entry(key, 1000, `"one"`)))
	requireEntry(t, s, v2)
	// An equal version does not replace either.
	require.NoError(t, s.Put(ctx(t), entry(key, 2000, `"other"`)))
	requireEntry(t, s, v2)
	v3 := entry(key, 3000, `"three"`)
	require.NoError(t, s.Put(ctx(t), v3))
	requireEntry(t, s, v3)
}

// testPutNew runs for stores that implement cache.NewPutter: the first
// entry of a key is stored and read back; versions still order the writes
// around it (a higher version stored first wins, a later higher one
// replaces it, a deletion at a higher version keeps it out); an expired
// entry is not stored.
func testPutNew(t *testing.T, s cache.Store) {
	np, ok := s.(cache.NewPutter)
	if !ok {
		t.Skip("the store does not implement cache.NewPutter")
	}
	key := uniq(t, "new")
	first := entry(key, 1000, `"first"`)
	require.NoError(t, np.PutNew(ctx(t), first))
	requireEntry(t, s, first)
	higher := entry(key, 2000, `"higher"`)
	require.NoError(t, s.Put(ctx(t), higher))
	requireEntry(t, s, higher)

	// Another gateway's higher version stored between the caller's read
	// and its PutNew: the higher version stays.
	raced := uniq(t, "new-raced")
	theirs := entry(raced, 5000, `"theirs"`)
	require.NoError(t, s.Put(ctx(t), theirs))
	require.NoError(t, np.PutNew(ctx(t), entry(raced, 4000, `"ours"`)))
	requireEntry(t, s, theirs)

	deleted := uniq(t, "new-deleted")
	require.NoError(t, s.Delete(ctx(t), deleted, 300))
	require.NoError(t, np.PutNew(ctx(t), entry(deleted, 200, `"late"`)))
	requireMissing(t, s, deleted)

	expired := entry(uniq(t, "new-expired"), 1, `1`)
	expired.ExpiresAt = time.Now().Add(-time.Second)
	require.NoError(t, np.PutNew(ctx(t), expired))
	requireMissing(t, s, expired.Key)
}

func testConcurrentWriters(t *testing.T, s cache.Store) {
	key := uniq(t, "conc")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				v := uint64(1000 + i*4 + w)
				require.NoError(t, s.Put(ctx(t), entry(key, v, fmt.Sprintf(`%d`, v))))
			}
		})
	}
	wg.Wait()
	got, err := s.Get(ctx(t), key)
	require.NoError(t, err)
	require.Equal(t, uint64(1000+24*4+3), got.Version)
	require.Equal(t, fmt.Sprint(got.Version), string(got.Value))
}

func testDelete(t *testing.T, s cache.Store) {
	key := uniq(t, "del")
	require.NoError(t, s.Put(ctx(t), entry(key, 100, `1`)))
	require.NoError(t, s.Delete(ctx(t), key, 200))
	requireMissing(t, s, key)
	// Deleting what is not there is fine.
	require.NoError(t, s.Delete(ctx(t), uniq(t, "del-none"), 5))
	// A newer write after the delete is stored.
	e := entry(key, 300, `3`)
	require.NoError(t, s.Put(ctx(t), e))
	requireEntry(t, s, e)
}

func testDeleteBlocksOlderPut(t *testing.T, s cache.Store) {
	key := uniq(t, "delold")
	require.NoError(t, s.Put(ctx(t), entry(key, 100, `1`)))
	require.NoError(t, s.Delete(ctx(t), key, 200))
	// A computation that started before the delete must not bring the key back.
	require.NoError(t, s.Put(ctx(t), entry(key, 150, `"late"`)))
	requireMissing(t, s, key)
}

func testDeleteKeepsNewer(t *testing.T, s cache.Store) {
	key := uniq(t, "delnew")
	e := entry(key, 500, `5`)
	require.NoError(t, s.Put(ctx(t), e))
	require.NoError(t, s.Delete(ctx(t), key, 400))
	requireEntry(t, s, e)
}

func testExpiredNotReturned(t *testing.T, s cache.Store) {
	key := uniq(t, "expired")
	e := entry(key, 1, `1`)
	e.ExpiresAt = time.Now().Add(-time.Second)
	require.NoError(t, s.Put(ctx(t), e))
	requireMissing(t, s, key)
}

func testExpiresLater(t *testing.T, s cache.Store) {
	key := uniq(t, "expires")
	e := entry(key, 1, `1`)
	e.ExpiresAt = time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	require.NoError(t, s.Put(ctx(t), e))
	requireEntry(t, s, e)
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx(t), key)
		return errors.Is(err, cache.ErrNotFound)
	}, 10*time.Second, 100*time.Millisecond, "entry outlived its ExpiresAt")
}

func testLargeValue(t *testing.T, s cache.Store) {
	big := make([]byte, 0, 3<<20)
	big = append(big, '[')
	for i := 0; len(big) < 3<<20; i++ {
		if i > 0 {
			big = append(big, ',')
		}
		big = fmt.Appendf(big, `{"id":%d,"title":"title number %d"}`, i, i)
	}
	big = append(big, ']')
	e := entry(uniq(t, "large"), 7, string(big))
	require.NoError(t, s.Put(ctx(t), e))
	requireEntry(t, s, e)
}

func testOddKeys(t *testing.T, s cache.Store) {
	for i, k := range []string{"k", "name/a%2Fb%25c", "name/ünïcödé/✓", "name//", "x/" + string(make([]byte, 0)) + "y"} {
		key := k + "/" + uniq(t, "odd")
		e := entry(key, uint64(i+1), fmt.Sprintf(`%d`, i))
		require.NoError(t, s.Put(ctx(t), e))
		requireEntry(t, s, e)
	}
}

func testLeaseExclusive(t *testing.T, s cache.Store) {
	lease := uniq(t, "lease")
	got, err := s.Acquire(ctx(t), lease, "a", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	got, err = s.Acquire(ctx(t), lease, "b", time.Minute)
	require.NoError(t, err)
	require.False(t, got, "a lease held by a must be refused to b")
	// The holder may acquire again (extend).
	got, err = s.Acquire(ctx(t), lease, "a", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	// Releasing someone else's lease does nothing.
	require.NoError(t, s.Release(ctx(t), lease, "b"))
	got, err = s.Acquire(ctx(t), lease, "b", time.Minute)
	require.NoError(t, err)
	require.False(t, got)
}

func testLeaseRelease(t *testing.T, s cache.Store) {
	lease := uniq(t, "lease")
	got, err := s.Acquire(ctx(t), lease, "a", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	require.NoError(t, s.Release(ctx(t), lease, "a"))
	got, err = s.Acquire(ctx(t), lease, "b", time.Minute)
	require.NoError(t, err)
	require.True(t, got, "a released lease must be free")
	// Releasing a lease nobody holds is fine.
	require.NoError(t, s.Release(ctx(t), uniq(t, "lease-none"), "a"))
}

func testLeaseExpires(t *testing.T, s cache.Store) {
	lease := uniq(t, "lease")
	got, err := s.Acquire(ctx(t), lease, "dead-worker", time.Second)
	require.NoError(t, err)
	require.True(t, got)
	require.Eventually(t, func() bool {
		got, err := s.Acquire(ctx(t), lease, "b", time.Minute)
		require.NoError(t, err)
		return got
	}, 10*time.Second, 100*time.Millisecond, "a lease whose holder died must free itself after its TTL")
}

func testLeaseRace(t *testing.T, s cache.Store) {
	lease := uniq(t, "lease")
	var winners atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			got, err := s.Acquire(ctx(t), lease, fmt.Sprintf("owner-%d", i), time.Minute)
			require.NoError(t, err)
			if got {
				winners.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), winners.Load(), "exactly one of 16 racing owners gets the lease")
}

func testPing(t *testing.T, s cache.Store) {
	require.NoError(t, s.Ping(ctx(t)))
}
