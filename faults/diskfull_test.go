//go:build faults

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
)

// mountTmpfs mounts a tmpfs of size on a new directory, unmounted at
// cleanup; it skips the test when it cannot (mounting needs root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full scenario: mounting a small tmpfs needs root")
	}
	dir, err := os.MkdirTemp("", "kck-faults-diskfull-")
	require.NoError(t, err)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		t.Skipf("disk-full scenario: cannot mount a tmpfs: %v: %s", err, out)
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

// fillDisk writes a file at path until the filesystem is full, then gives
// back leave bytes of it, so that the load fills the rest.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling: %v", err)
			break
		}
	}
	require.NoError(t, f.Truncate(max(0, n-leave)))
}

// blobKey is the seq-th product of a stream never read before; each is
// 16 KiB, so the misses grow the store.
func blobKey(stream string, seq int64) string { return fmt.Sprintf("blob/%s%d", stream, seq) }

// The embedded store's disk fills up under load. What the gateway does: a
// write to the store fails with ENOSPC (logged, counted); an operation
// whose answer is the store write (invalidate) fails with 507
// STORAGE_FULL; a miss is still answered with its computed value (served
// from memory, not stored: the cache serves rather than fails when the
// store does); reads of held products go on. Once space is freed, the store
// takes writes again; reopened, it holds every value it acknowledged
// intact and passes the store contract suite.
func TestEmbeddedStoreDiskFull(t *testing.T) {
	r := scenario(t, 80, "The embedded store's disk full",
		"the gateway stays up; reads of held products 0 failed; store writes fail with ENOSPC (logged, counted), a failed invalidation is a STORAGE_FULL error; misses answered from memory, not stored; once space returns the store writes again, and reopened holds every entry it stored and passes its contract suite")
	mnt := mountTmpfs(t, "24m")
	dataDir := filepath.Join(mnt, "data")
	dsn := database(t)
	dir := sqlDir(t, map[string]string{
		"blob.sql": "-- kck:product blob(n string)\n-- kck:auth public\n-- kck:result value\nSELECT repeat('x', 16384) || :n AS v\n",
	})
	g := startGateway(t, "embedded", gatewayConfig{store: "embedded", postgres: dsn, sqlDir: dir, dataDir: dataDir})

	// Misses answered, by phase; the stored ones are checked after reopen.
	var mu sync.Mutex
	answered := map[string]map[string]string{} // phase -> key -> value
	var phase string
	setPhase := func(l *load, p string) {
		mu.Lock()
		phase = p
		mu.Unlock()
		l.setPhase(p)
	}
	misses := stream{class: "misses", rate: 20,
		next: func(seq int64) call { return call{gw: g, path: "/fetch?key=" + blobKey("m", seq)} },
		done: func(seq int64, c call, status int, body []byte) {
			if status != 200 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if answered[phase] == nil {
				answered[phase] = map[string]string{}
			}
			answered[phase][blobKey("m", seq)] = string(body)
		}}
	invalidates := stream{class: "invalidations", rate: 5,
		next: func(seq int64) call {
			q := fmt.Sprintf(`{"query":"mutation { invalidate(key: \"%s\") }"}`, blobKey("i", seq))
			return call{gw: g, method: http.MethodPost, path: "/graphql", body: q}
		},
		ok: graphqlOK}
	l := startLoad(hotStream(100, g), misses, invalidates)
	defer l.stop()
	setPhase(l, "before")
	hold(5 * time.Second)

	setPhase(l, "filling")
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, 2<<20)
	putErrors := func() float64 { return g.metric(`kck_store_errors_total{op="put"}`) }
	require.Eventually(t, func() bool { return putErrors() > 0 }, 2*time.Minute, 100*time.Millisecond, "the load fills the disk: a store write fails")
	setPhase(l, "full")
	full := time.Now()
	hold(10 * time.Second)
	require.True(t, g.alive(), "the gateway stays up with its disk full")
	readyFull := g.readyStatus()
	fullLogs := g.logged(regexp.MustCompile(`no space left on device`))

	setPhase(l, "space freed")
	require.NoError(t, os.Remove(filler))
	freed := time.Now()
	// Writes pass again: an invalidation is answered by the store's write.
	var writesBack time.Duration
	require.Eventually(t, func() bool {
		st, b, err := g.post("/graphql", fmt.Sprintf(`{"query":"mutation { invalidate(key: \"%s\") }"}`, blobKey("probe", time.Now().UnixNano())))
		if err == nil && graphqlOK(st, b) {
			writesBack = time.Since(freed)
			return true
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the store takes writes once space is freed")
	errsAtBack := putErrors()
	setPhase(l, "after")
	hold(10 * time.Second)
	errsAfter := putErrors()
	l.stop()
	require.True(t, g.alive(), "the gateway is up at the end")
	g.stop()

	// The file, reopened: every miss answered before the disk filled and
	// after space returned is stored with the value served.
	s, err := bolt.Open(dataDir, bolt.Options{})
	require.NoError(t, err, "the store reopens after its disk was full")
	ctx := context.Background()
	checked, missing, fullStored, fullServed := 0, []string{}, 0, 0
	mu.Lock()
	for p, keys := range answered {
		for k, body := range keys {
			e, err := s.Get(ctx, k)
			if p == "before" || p == "after" {
				checked++
				if err != nil {
					missing = append(missing, fmt.Sprintf("%s (%s): %v", k, p, err))
					continue
				}
				assert.Contains(t, body, string(e.Value), "%s: the stored value is the one served", k)
				continue
			}
			fullServed++
			if err == nil {
				fullStored++
				assert.Contains(t, body, string(e.Value), "%s: the stored value is the one served", k)
			}
		}
	}
	mu.Unlock()
	var entries int
	require.NoError(t, s.Scan(ctx, func(e cache.Entry) error { entries++; return nil }))
	require.NoError(t, s.Close())
	cachetest.Run(t, func(t *testing.T) cache.Store {
		s, err := bolt.Open(dataDir, bolt.Options{})
		require.NoError(t, err)
		return s
	})

	hot := l.get("hot reads")
	r.Load = l.held() + ", 1 gateway (embedded store on a 24 MiB tmpfs)"
	r.Failed = fmt.Sprintf("hot reads %s; misses %s; invalidations %s", hot.failures(), l.get("misses").failures(), l.get("invalidations").failures())
	r.Stale = fmt.Sprint(l.all().Stale)
	r.DataLost = fmt.Sprintf("0 of %d stored entries lost or corrupt (misses answered while the disk was full: %d, of which %d stored)", checked, fullServed, fullStored)
	r.Recover = fmt.Sprintf("writes succeed %.1f s after the filler was removed", writesBack.Seconds())
	for _, ph := range []string{"before", "filling", "full", "space freed", "after"} {
		for _, c := range []string{"hot reads", "misses", "invalidations"} {
			tl := l.get(c, ph)
			r.note("%s, %s: %d sent, failed %s, p99 %v", ph, c, tl.Sent, tl.failures(), tl.Pct(99).Round(time.Millisecond))
		}
	}
	r.note("disk full for %.0f s; /readyz answered %d meanwhile; %d store writes failed in all (%v after writes came back)", freed.Sub(full).Seconds(), readyFull, int(errsAfter), errsAfter-errsAtBack)
	if len(fullLogs) > 0 {
		r.note("its log: `%s`", fullLogs[0])
	}
	r.note("reopened with bolt.Open: %d entries; every miss answered before the disk filled or after space returned (%d) is stored with the value served; cachetest.Run passes on the file", entries, checked)

	assert.Zero(t, hot.Failed, "hot reads failed: %s", hot.failures())
	assert.Zero(t, l.all().Overrun, "the load generator fell behind")
	assert.Empty(t, missing, "acknowledged entries missing after reopen")
	assert.NotEmpty(t, fullLogs, "the gateway logs the store's ENOSPC")
	inv := l.get("invalidations", "full")
	for st := range inv.Statuses {
		assert.Equal(t, "200 STORAGE_FULL", st, "invalidations on a full disk fail with STORAGE_FULL")
	}
	for _, ph := range []string{"after"} {
		assert.Zero(t, l.all(ph).Failed, "%s: nothing fails once space returned: %s", ph, l.all(ph).failures())
	}
	assert.Equal(t, errsAtBack, errsAfter, "no store write fails once space returned")
}
