package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
)

// tmpfs mounts a tmpfs of size on a new directory, unmounted at cleanup;
// it skips the test when it cannot (mounting needs root).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full test: mounting a small tmpfs needs root")
	}
	dir, err := os.MkdirTemp("", "kck-diskfull-")
	require.NoError(t, err)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		t.Skipf("disk-full test: cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		_ = os.Remove(dir)
	})
	return dir
}

// fill writes a file at path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling: %v", err)
			return
		}
	}
}

// The embedded store's disk fills up (issue 14): writes fail with an error
// that says so (ENOSPC, which the edge answers 507 STORAGE_FULL), reads of
// what was stored go on, and once space returns writes pass again and the
// store, reopened, holds everything it acknowledged and passes the
// contract suite.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	mnt := tmpfs(t, "8m")
	dir := filepath.Join(mnt, "store")
	ctx := context.Background()
	s, err := bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	entry := func(i int, size int) cache.Entry {
		return cache.Entry{Key: fmt.Sprintf("p/%d", i), Value: bytes.Repeat([]byte{'v'}, size), Version: uint64(i + 1),
			ComputedAt: time.Now().UTC().Truncate(time.Microsecond)}
	}
	var stored []cache.Entry
	for i := range 20 {
		e := entry(i, 1024)
		require.NoError(t, s.Put(ctx, e))
		stored = append(stored, e)
	}

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	var werr error
	for i := 20; i < 2000 && werr == nil; i++ {
		e := entry(i, 256<<10)
		if werr = s.Put(ctx, e); werr == nil {
			stored = append(stored, e) // bbolt's free pages took it
		}
	}
	require.Error(t, werr, "writes on a full disk fail")
	require.True(t, errors.Is(werr, syscall.ENOSPC), "the error says the disk is full: %v", werr)
	t.Logf("write on a full disk: %v", werr)
	for _, e := range stored {
		got, err := s.Get(ctx, e.Key)
		require.NoError(t, err, "reads go on with the disk full")
		require.Equal(t, e.Version, got.Version)
	}

	require.NoError(t, os.Remove(filler))
	more := entry(5000, 1024)
	require.NoError(t, s.Put(ctx, more), "writes pass once space returns")
	stored = append(stored, more)
	require.NoError(t, s.Close())

	s, err = bolt.Open(dir, bolt.Options{})
	require.NoError(t, err, "the store reopens after the disk was full")
	for _, e := range stored {
		got, err := s.Get(ctx, e.Key)
		require.NoError(t, err, "acknowledged before or after the disk filled: %s", e.Key)
		require.Equal(t, e.Value, got.Value)
	}
	require.NoError(t, s.Close())
	cachetest.Run(t, func(t *testing.T) cache.Store {
		s, err := bolt.Open(dir, bolt.Options{})
		require.NoError(t, err)
		return s
	})
}
