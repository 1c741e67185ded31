package bolt_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	cachetest.Run(t, func(t *testing.T) cache.Store {
		s, err := bolt.Open(t.TempDir(), bolt.Options{})
		require.NoError(t, err)
		return s
	})
}

func TestSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	e := cache.Entry{Key: "title_list/42", Value: []byte(`[{"id":1}]`), Version: 99, ComputedAt: time.Now().UTC().Truncate(time.Microsecond)}
	require.NoError(t, s.Put(ctx, e))
	require.NoError(t, s.Delete(ctx, "gone/1", 500))
	require.NoError(t, s.Close())

	s, err = bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.Get(ctx, "title_list/42")
	require.NoError(t, err)
	require.Equal(t, e.Value, got.Value)
	require.Equal(t, e.Version, got.Version)
	require.True(t, e.ComputedAt.Equal(got.ComputedAt))
	// The tombstone survived too: an older write stays out.
	require.NoError(t, s.Put(ctx, cache.Entry{Key: "gone/1", Value: []byte(`1`), Version: 400}))
	_, err = s.Get(ctx, "gone/1")
	require.ErrorIs(t, err, cache.ErrNotFound)
}

func TestSecondOpenIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = bolt.Open(dir, bolt.Options{OpenTimeout: 100 * time.Millisecond})
	require.ErrorContains(t, err, "locked by another process")
}

func TestScanSkipsExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	defer s.Close()
	for i, k := range []string{"a/1", "a/2", "a/3"} {
		require.NoError(t, s.Put(ctx, cache.Entry{Key: k, Value: []byte(`1`), Version: uint64(i + 1)}))
	}
	require.NoError(t, s.Put(ctx, cache.Entry{Key: "b/1", Value: []byte(`1`), Version: 1, ExpiresAt: time.Now().Add(time.Hour)}))
	var keys []string
	require.NoError(t, s.Scan(ctx, func(e cache.Entry) error { keys = append(keys, e.Key); return nil }))
	require.Equal(t, []string{"a/1", "a/2", "a/3", "b/1"}, keys)
}
