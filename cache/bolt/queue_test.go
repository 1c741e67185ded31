package bolt_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/queue/queuetest"
)

func TestQueueContract(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T, cfg queue.Config) queue.Store {
		s, err := bolt.Open(t.TempDir(), bolt.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		q, err := s.Queue(cfg)
		require.NoError(t, err)
		return q
	})
}

// The queue lives in the store's file: it survives a restart with it.
func TestQueueSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	q, err := s.Queue(queue.Config{})
	require.NoError(t, err)
	require.NoError(t, q.Enqueue(t.Context(), "title_list/42", timeOf(t)))
	require.NoError(t, s.Close())

	s, err = bolt.Open(dir, bolt.Options{})
	require.NoError(t, err)
	defer s.Close()
	q, err = s.Queue(queue.Config{})
	require.NoError(t, err)
	it, err := q.Get(t.Context(), "title_list/42")
	require.NoError(t, err)
	require.EqualValues(t, 1, it.Requests)
}

func timeOf(t *testing.T) time.Time {
	t.Helper()
	return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
}
