package source_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/source"
)

// feed records what a listener saw.
type feed struct {
	mu      sync.Mutex
	changes []source.Change
	resyncs int
}

func (f *feed) opts(url string) source.ListenerOptions {
	return source.ListenerOptions{URL: url,
		OnChange: func(_ context.Context, c source.Change) { f.mu.Lock(); f.changes = append(f.changes, c); f.mu.Unlock() },
		OnResync: func(context.Context) { f.mu.Lock(); f.resyncs++; f.mu.Unlock() },
	}
}

func (f *feed) sawID(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.changes {
		if n, ok := c.New["id"].(interface{ Int64() (int64, error) }); ok {
			if v, _ := n.Int64(); v == id {
				return true
			}
		}
	}
	return false
}

func (f *feed) resynced() int { f.mu.Lock(); defer f.mu.Unlock(); return f.resyncs }

func setup(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := source.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	_, err = p.Exec(ctx, `CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY, name text)`)
	require.NoError(t, err)
	require.NoError(t, source.Migrate(ctx, p, map[string][]string{"things": {"id"}}))
	return p
}

// exec runs sql, again if the pool's connection was one the server
// dropped (after a restart, a pooled connection fails once).
func exec(t *testing.T, p *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := p.Exec(ctx, sql, args...)
	if err != nil {
		_, err = p.Exec(ctx, sql, args...)
	}
	require.NoError(t, err)
}

// PostgreSQL stopped and started again (its own throwaway server): the
// listener reports itself disconnected, reconnects with no help, asks for a
// resync (what its user refreshes: changes made while it was away were not
// notified) and receives changes again.
func TestListenerReconnectsAfterServerRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	p := setup(t, srv.URL())
	f := &feed{}
	l, err := source.Listen(context.Background(), f.opts(srv.URL()))
	require.NoError(t, err)
	defer l.Close()
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, func() bool { return f.sawID(1) }, time.Minute, 10*time.Millisecond)

	srv.Stop()
	require.Eventually(t, func() bool { return !l.Connected() }, time.Minute, 10*time.Millisecond)
	srv.Start()
	require.Eventually(t, func() bool { return l.Connected() && f.resynced() == 1 }, 2*time.Minute, 10*time.Millisecond,
		"reconnected and resynced")
	exec(t, p, `INSERT INTO things VALUES (2, 'two')`)
	require.Eventually(t, func() bool { return f.sawID(2) }, time.Minute, 10*time.Millisecond, "changes flow after the restart")
}

// The LISTEN connection alone is cut (its backend terminated) and a row
// changes while it cannot come back (new connections refused): that
// change is never notified to it, and the resync after its reconnection is
// what lets its user catch up.
func TestListenerResyncsAfterMissedChange(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	p := setup(t, srv.URL())
	f := &feed{}
	l, err := source.Listen(context.Background(), f.opts(srv.URL()))
	require.NoError(t, err)
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Connected to another database: it stays connected while new
	// connections to kck are refused.
	admin, err := source.Open(ctx, srv.AdminURL())
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.Exec(ctx, `ALTER DATABASE kck WITH ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	pid := l.BackendPID()
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(pid))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int32(pid)).Scan(&n)
		return err == nil && n == 0 && !l.Connected()
	}, time.Minute, 10*time.Millisecond, "the listening backend is gone")
	// p's connection was open before, so it may still write to kck.
	exec(t, p, `INSERT INTO things VALUES (3, 'missed')`)
	require.Zero(t, f.resynced())
	_, err = admin.Exec(ctx, `ALTER DATABASE kck WITH ALLOW_CONNECTIONS true`)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return l.Connected() && f.resynced() == 1 }, 2*time.Minute, 10*time.Millisecond,
		"reconnected and resynced")
	require.False(t, f.sawID(3), "the change made while away was not notified: the resync is what covers it")
	exec(t, p, `INSERT INTO things VALUES (4, 'after')`)
	require.Eventually(t, func() bool { return f.sawID(4) }, time.Minute, 10*time.Millisecond)
}
