package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/queue"
)

func TestQueueCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	q, err := s.Queue(queue.Config{})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, q.EnqueueMany(ctx, []string{"a/1", "a/2"}, time.Now().Add(-time.Minute)))
	items, err := q.Claim(ctx, "w", 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, q.Release(ctx, "w", items[0].Key, items[0].Version, queue.Permanent(context.DeadlineExceeded)))
	poisoned := items[0].Key
	require.NoError(t, s.Close())

	kck := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runQueue(append([]string{"--data-dir", dir}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := kck()
	require.Equal(t, 0, code)
	require.Contains(t, out, "depth 1")
	require.Contains(t, out, "poisoned 1\n  "+poisoned)

	code, out, _ = kck("show", poisoned, "nope/1")
	require.Equal(t, 0, code)
	require.Contains(t, out, "true")
	require.Contains(t, out, "deadline exceeded")
	require.Contains(t, out, "not queued")

	code, out, _ = kck("retry", poisoned)
	require.Equal(t, 0, code, out)
	code, out, _ = kck("stats")
	require.Equal(t, 0, code)
	require.Contains(t, out, "depth 2")
	require.Contains(t, out, "poisoned 0")

	code, _, _ = kck("remove", "a/1", "a/2")
	require.Equal(t, 0, code)
	code, _, _ = kck("enqueue", "b/1")
	require.Equal(t, 0, code)
	code, out, _ = kck()
	require.Equal(t, 0, code)
	require.Contains(t, out, "depth 1")

	code, _, errOut := kck("frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "unknown action")
	code, _, errOut = kck("retry")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "at least one key")
	code, _, _ = kck("--help")
	require.Equal(t, 0, code)
}

func TestDumpAndLoadCommands(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), t.TempDir()
	s, err := bolt.Open(src, bolt.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	for i, k := range []string{"a/1", "a/2", "b/x"} {
		require.NoError(t, s.Put(ctx, cache.Entry{Key: k, Value: []byte(`{"n":1}`), Version: uint64(100 + i), ComputedAt: time.Now()}))
	}
	require.NoError(t, s.Close())

	file := filepath.Join(t.TempDir(), "dump.jsonl")
	var out, errOut bytes.Buffer
	require.Equal(t, 0, runDump([]string{"--data-dir", src, file}, &out, &errOut), errOut.String())
	require.Contains(t, errOut.String(), "3 entries")
	out.Reset()
	require.Equal(t, 0, runDump([]string{"--data-dir", src}, &out, &errOut))
	require.Equal(t, 3, strings.Count(out.String(), "\n"))

	errOut.Reset()
	out.Reset()
	require.Equal(t, 0, runLoad([]string{"--data-dir", dst, file}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "3 entries")
	// Out and back, identical: the loaded store dumps the same bytes.
	again := filepath.Join(t.TempDir(), "again.jsonl")
	require.Equal(t, 0, runDump([]string{"--data-dir", dst, again}, &out, &errOut), errOut.String())
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	got, err := os.ReadFile(again)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	d, err := bolt.Open(dst, bolt.Options{})
	require.NoError(t, err)
	defer d.Close()
	e, err := d.Get(ctx, "b/x")
	require.NoError(t, err)
	require.EqualValues(t, 102, e.Version)

	require.Equal(t, 2, runLoad([]string{"--store", "nope", file}, &out, &errOut))
	require.Equal(t, 2, runDump([]string{"--data-dir", src, file, "extra"}, &out, &errOut))
}
