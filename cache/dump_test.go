package cache_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
)

func TestDumpLoadRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := func() *bolt.Store {
		s, err := bolt.Open(t.TempDir(), bolt.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	src := open()
	now := time.Now().UTC().Truncate(time.Microsecond)
	entries := []cache.Entry{
		{Key: "a/1", Value: []byte(`{"x":1}`), Version: 10, ComputedAt: now},
		{Key: "b/with%2Fslash", Value: []byte(`[1,2]`), Version: 1 << 52, ComputedAt: now, StaleAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)},
		{Key: "plain", Value: []byte(`"s"`), Version: 3, ComputedAt: now},
	}
	for _, e := range entries {
		require.NoError(t, src.Put(ctx, e))
	}
	var buf bytes.Buffer
	n, err := cache.Dump(ctx, src, &buf)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 3, strings.Count(buf.String(), "\n"), "one line per entry")

	dst := open()
	// The destination already holds a newer a/1: it stays.
	require.NoError(t, dst.Put(ctx, cache.Entry{Key: "a/1", Value: []byte(`{"x":2}`), Version: 11, ComputedAt: now}))
	dump := buf.String()
	n, err = cache.Load(ctx, dst, strings.NewReader(dump))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = cache.Load(ctx, dst, strings.NewReader(dump))
	require.NoError(t, err, "loading twice is harmless")
	for i, want := range entries {
		got, err := dst.Get(ctx, want.Key)
		require.NoError(t, err)
		if i == 0 {
			require.JSONEq(t, `{"x":2}`, string(got.Value))
			continue
		}
		require.Equal(t, want.Value, got.Value)
		require.Equal(t, want.Version, got.Version)
		require.True(t, want.ComputedAt.Equal(got.ComputedAt))
		require.True(t, want.StaleAt.Equal(got.StaleAt))
		require.True(t, want.ExpiresAt.Equal(got.ExpiresAt))
	}

	_, err = cache.Load(ctx, dst, strings.NewReader(`{"key":"x"}`))
	require.ErrorContains(t, err, "required")
	_, err = cache.Load(ctx, dst, strings.NewReader(`not json`))
	require.ErrorContains(t, err, "entry 1")
}
