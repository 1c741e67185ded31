package source_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/source"
)

// seen records the keys a follower handed out: thing/<id> for each row.
type seen struct {
	mu      sync.Mutex
	keys    []string
	resyncs int
}

func (s *seen) opts(url, name string) source.FollowOptions {
	return source.FollowOptions{URL: url, Name: name, Poll: 50 * time.Millisecond, CleanupEvery: 100 * time.Millisecond,
		Affected: func(c source.Change) []string {
			var out []string
			for _, row := range []map[string]any{c.Old, c.New} {
				if row != nil {
					out = append(out, fmt.Sprintf("thing/%v", row["id"]))
				}
			}
			return out
		},
		Resync: func(context.Context) []string { s.mu.Lock(); s.resyncs++; s.mu.Unlock(); return []string{"thing/all"} },
		Refresh: func(_ context.Context, key string, _ time.Time, done func(error)) {
			s.mu.Lock()
			s.keys = append(s.keys, key)
			s.mu.Unlock()
			done(nil)
		},
	}
}

func (s *seen) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

func (s *seen) has(keys ...string) func() bool {
	return func() bool {
		got := s.got()
		for _, k := range keys {
			if !slices.Contains(got, k) {
				return false
			}
		}
		return true
	}
}

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
	require.NoError(t, source.Migrate(ctx, p, map[string][]string{"things": {"id"}}), "idempotent")
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

// follow runs a follower until the returned stop is called (or the test
// ends).
func follow(t *testing.T, s *seen, url, name string) (*source.Follower, func()) {
	t.Helper()
	return followWith(t, s.opts(url, name))
}

// followWith is follow with options of the test's own.
func followWith(t *testing.T, opts source.FollowOptions) (*source.Follower, func()) {
	t.Helper()
	url, name := opts.URL, opts.Name
	f, err := source.NewFollower(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	require.Eventually(t, func() bool {
		var n int
		err := pgxQueryInt(url, `SELECT count(*) FROM kck_source_position WHERE follower = $1`, name, &n)
		return err == nil && n == 1 && f.Following() && f.Connected()
	}, time.Minute, 5*time.Millisecond, "following, from a position")
	return f, sync.OnceFunc(stop)
}

func pgxQueryInt(url, sql string, arg any, n *int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql, arg).Scan(n)
}

// positionAt waits until the follower's position has passed every row in
// the log now.
func positionAt(t *testing.T, p *pgxpool.Pool, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var caught bool
		err := p.QueryRow(context.Background(), `SELECT coalesce((SELECT (xid, id) >= ALL (SELECT xid, id FROM kck_source_changes)
			FROM kck_source_position WHERE follower = $1), false)`, name).Scan(&caught)
		return err == nil && caught
	}, time.Minute, 10*time.Millisecond, "the position passed the log's end")
}

// looped waits until the follower has gone round its loop since now (it
// says it is alive every CleanupEvery, after reading what it could).
func looped(t *testing.T, p *pgxpool.Pool, name string) {
	t.Helper()
	var since time.Time
	require.NoError(t, p.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&since))
	require.Eventually(t, func() bool {
		var n int
		err := p.QueryRow(context.Background(), `SELECT count(*) FROM kck_source_position WHERE follower = $1 AND updated > $2::timestamptz + interval '300 milliseconds'`,
			name, since).Scan(&n)
		return err == nil && n == 1
	}, time.Minute, 10*time.Millisecond, "the follower went round its loop")
}

// A URL carrying the pool's own settings (pool_max_conns) is followed: the
// follower's connection does not send them to the server.
func TestFollowerTakesAPoolURL(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s := &seen{}
	follow(t, s, url+sep+"pool_max_conns=3", "c1")
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, s.has("thing/1"), time.Minute, 5*time.Millisecond)
}

// Each committed row change reaches the follower once, old and new row
// alike; a rolled-back one never does.
func TestFollowerReadsEveryChange(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	s := &seen{}
	follow(t, s, url, "c1")
	exec(t, p, `INSERT INTO things VALUES (1, 'one'), (2, 'two')`)
	exec(t, p, `UPDATE things SET id = 3 WHERE id = 2`)
	tx, err := p.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), `INSERT INTO things VALUES (9, 'never')`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(t.Context()))
	exec(t, p, `DELETE FROM things WHERE id = 1`)
	require.Eventually(t, s.has("thing/1", "thing/2", "thing/3"), time.Minute, 5*time.Millisecond)
	positionAt(t, p, "c1")
	assert.ElementsMatch(t, []string{"thing/1", "thing/2", "thing/2", "thing/3", "thing/1"}, s.got(), "once each: insert, insert, update (old, new), delete")
}

// A transaction that began first and commits last is not skipped: the
// follower reads past no row an open transaction could still precede.
func TestFollowerWaitsForAnOlderTransaction(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	s := &seen{}
	follow(t, s, url, "c1")
	older, err := p.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = older.Rollback(context.Background()) })
	_, err = older.Exec(t.Context(), `INSERT INTO things VALUES (10, 'older')`)
	require.NoError(t, err)
	exec(t, p, `INSERT INTO things VALUES (11, 'newer')`)
	looped(t, p, "c1") // and read what it could: the newer row is behind the open older one
	assert.NotContains(t, s.got(), "thing/11", "held back behind the open transaction")
	require.NoError(t, older.Commit(t.Context()))
	require.Eventually(t, s.has("thing/10", "thing/11"), time.Minute, 5*time.Millisecond)
}

// A follower that stops (its gateway dies, another takes over) goes on
// from its position: the changes made while nobody followed arrive, and
// what was read before does not again.
func TestFollowerGoesOnFromItsPosition(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	first := &seen{}
	_, stop := follow(t, first, url, "c1")
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, first.has("thing/1"), time.Minute, 5*time.Millisecond)
	positionAt(t, p, "c1")
	stop()
	exec(t, p, `INSERT INTO things VALUES (2, 'two'), (3, 'three')`)

	next := &seen{}
	follow(t, next, url, "c1")
	require.Eventually(t, next.has("thing/2", "thing/3"), time.Minute, 5*time.Millisecond)
	positionAt(t, p, "c1")
	assert.ElementsMatch(t, []string{"thing/2", "thing/3"}, next.got())

	empty := func() bool {
		var n int
		return p.QueryRow(t.Context(), `SELECT count(*) FROM kck_source_changes`).Scan(&n) == nil && n == 0
	}
	require.Eventually(t, empty, time.Minute, 10*time.Millisecond, "the log keeps nothing its one follower read")

	other := &seen{}
	follow(t, other, url, "c2") // another cluster: its own position
	exec(t, p, `INSERT INTO things VALUES (4, 'four')`)
	require.Eventually(t, other.has("thing/4"), time.Minute, 5*time.Millisecond)
	require.Eventually(t, next.has("thing/4"), time.Minute, 5*time.Millisecond)
	assert.Equal(t, []string{"thing/4"}, other.got())
	positionAt(t, p, "c1")
	positionAt(t, p, "c2")
	require.Eventually(t, empty, time.Minute, 10*time.Millisecond, "the log keeps nothing every follower read")
}

// A cluster's first follower starts a minute before the log's head: a
// change made just before it started is not lost.
func TestFirstFollowerLooksBack(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	exec(t, p, `INSERT INTO things VALUES (1, 'before')`)
	s := &seen{}
	follow(t, s, url, "c1")
	require.Eventually(t, s.has("thing/1"), time.Minute, 5*time.Millisecond)
}

// A position older than the log keeps has lost changes: the follower asks
// for a resync and goes on from the head.
func TestFollowerResyncsAStalePosition(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	s := &seen{}
	_, stop := follow(t, s, url, "c1")
	stop()
	exec(t, p, `UPDATE kck_source_position SET updated = now() - interval '25 hours' WHERE follower = 'c1'`)
	follow(t, s, url, "c1")
	require.Eventually(t, s.has("thing/all"), time.Minute, 5*time.Millisecond)
	s.mu.Lock()
	assert.Equal(t, 1, s.resyncs)
	s.mu.Unlock()
}

// The follower's connection is cut and PostgreSQL restarted: it
// reconnects with no help and the changes made meanwhile arrive (the log
// keeps them: nothing to resync).
func TestFollowerReconnects(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	p := setup(t, srv.URL())
	s := &seen{}
	f, _ := follow(t, s, srv.URL(), "c1")
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, s.has("thing/1"), time.Minute, 5*time.Millisecond)

	exec(t, p, `SELECT pg_terminate_backend($1)`, int32(f.BackendPID()))
	exec(t, p, `INSERT INTO things VALUES (2, 'while cut')`)
	require.Eventually(t, s.has("thing/2"), time.Minute, 5*time.Millisecond)

	srv.Stop()
	require.Eventually(t, func() bool { return !f.Connected() }, time.Minute, 10*time.Millisecond)
	srv.Start()
	exec(t, p, `INSERT INTO things VALUES (3, 'after')`)
	require.Eventually(t, s.has("thing/3"), 2*time.Minute, 10*time.Millisecond)
	require.True(t, f.Connected())
	s.mu.Lock()
	assert.Zero(t, s.resyncs)
	s.mu.Unlock()
}

// The follower's connection is named in pg_stat_activity (so that the
// connections following the log can be counted), unless the URL names it.
func TestFollowerNamesItsConnection(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	setup(t, url)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, tc := range []struct {
		name, url, want string
	}{
		{"default", url, source.FollowerApplicationName},
		{"from the URL", url + sep + "application_name=mine", "mine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := follow(t, &seen{}, tc.url, "c-"+tc.want)
			var got string
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, url)
			require.NoError(t, err)
			defer conn.Close(ctx)
			require.NoError(t, conn.QueryRow(ctx, `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, int32(f.BackendPID())).Scan(&got))
			assert.Equal(t, tc.want, got)
		})
	}
}

// flaky is a Refresh whose first fails attempts of each key fail (-1:
// every one), as when the store refuses the value or the source is down.
type flaky struct {
	fails    int
	mu       sync.Mutex
	attempts map[string]int
}

func (fl *flaky) refresh(_ context.Context, key string, _ time.Time, done func(error)) {
	fl.mu.Lock()
	if fl.attempts == nil {
		fl.attempts = map[string]int{}
	}
	fl.attempts[key]++
	n := fl.attempts[key]
	fl.mu.Unlock()
	if fl.fails < 0 || n <= fl.fails {
		done(errors.New("refreshed but not stored"))
		return
	}
	done(nil)
}

func (fl *flaky) count(key string) int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.attempts[key]
}

// A key whose refresh fails is handed out again, and the position does not
// pass its row until it succeeds: counted done at the first failure, the
// change would be lost (the store keeps the value it had).
func TestFollowerRetriesAFailedRefresh(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	fl := &flaky{fails: 2}
	opts := (&seen{}).opts(url, "c1")
	opts.Refresh, opts.RetryWait = fl.refresh, 10*time.Millisecond
	followWith(t, opts)
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	positionAt(t, p, "c1")
	assert.Equal(t, 3, fl.count("thing/1"), "failed twice, refreshed the third time, and only then passed")
}

// A follower that stops while a key's refresh keeps failing (it lost its
// lease: the lease is in the store, which is down) leaves the row
// unfinished, and the next follower refreshes the key.
func TestFollowerLeavesAFailingRowToTheNext(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	fl := &flaky{fails: -1}
	opts := (&seen{}).opts(url, "c1")
	opts.Refresh, opts.RetryWait = fl.refresh, time.Hour
	_, stop := followWith(t, opts)
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, func() bool { return fl.count("thing/1") == 1 }, time.Minute, 5*time.Millisecond)
	looped(t, p, "c1") // and wrote its position, had it moved
	stop()

	next := &seen{}
	follow(t, next, url, "c1")
	require.Eventually(t, next.has("thing/1"), time.Minute, 5*time.Millisecond, "the next follower refreshes the key")
	positionAt(t, p, "c1")
}

// A key that always fails is given up on after refreshRetries more
// attempts: it does not hold the position back for good.
func TestFollowerGivesUpOnAKeyThatAlwaysFails(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	fl := &flaky{fails: -1}
	opts := (&seen{}).opts(url, "c1")
	opts.Refresh, opts.RetryWait = fl.refresh, time.Millisecond
	followWith(t, opts)
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	positionAt(t, p, "c1")
	assert.Equal(t, 6, fl.count("thing/1"), "the first attempt and 5 more")
}

// The backlog gauge falls back to 0 once the refreshes of the last batch
// finish, though no batch is read after them: the scale bench (and an
// operator's alert) waits on it.
func TestFollowerBacklogEmptiesAfterTheLastBatch(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p := setup(t, url)
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	opts := (&seen{}).opts(url, "c1")
	opts.Registerer = reg
	opts.Refresh = func(_ context.Context, _ string, _ time.Time, done func(error)) {
		go func() { <-release; done(nil) }() // finishes after its batch was read
	}
	followWith(t, opts)
	exec(t, p, `INSERT INTO things VALUES (1, 'one')`)
	require.Eventually(t, func() bool { return metrictest.Value(t, reg, "kck_source_backlog_rows") == 1 },
		time.Minute, 5*time.Millisecond, "the row is read, its refresh under way")
	close(release)
	positionAt(t, p, "c1")
	require.Eventually(t, func() bool { return metrictest.Value(t, reg, "kck_source_backlog_rows") == 0 },
		time.Minute, 5*time.Millisecond, "nothing left under way")
}
