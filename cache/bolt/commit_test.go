package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"
)

// Concurrent writes all commit, sharing transactions; a write that fails
// fails only its own caller, and leaves nothing behind.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }))
	g := &groupCommit{db: db}
	boom := errors.New("boom")

	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = g.do(func(tx *bbolt.Tx) error {
				if err := tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
				if i%50 == 7 {
					return boom // after writing: the write must be rolled back
				}
				return nil
			})
		})
	}
	wg.Wait()
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := range n {
			if i%50 == 7 {
				require.ErrorIs(t, errs[i], boom)
				require.Nil(t, b.Get(fmt.Appendf(nil, "k%03d", i)), "failed write %d rolled back", i)
				continue
			}
			require.NoError(t, errs[i], "write %d", i)
			require.NotNil(t, b.Get(fmt.Appendf(nil, "k%03d", i)), "write %d committed", i)
		}
		return nil
	}))
	// A leader answers its batch's callers before it looks for more work,
	// so it may still be running for a moment after the last caller returns.
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return !g.running && len(g.pending) == 0
	}, 2*time.Minute, time.Millisecond, "no leader left running, nothing pending")
}
