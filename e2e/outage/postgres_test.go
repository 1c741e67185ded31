package outage

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/source"
)

func titlesOf(t *testing.T, p *pgxpool.Pool, author int) int {
	t.Helper()
	var n int
	require.NoError(t, p.QueryRow(ctx(t), `SELECT count(*) FROM titles WHERE author_id = $1`, author).Scan(&n))
	return n
}

// PostgreSQL stopped under a running gateway (SQL products, embedded
// store):
//   - cached products are still served; one whose refresh failed is served
//     flagged stale ("stale": true in /fetch and in extensions.kck.products);
//   - mutations, /update and the typed addTitle, answer 503 UNAVAILABLE and
//     write nothing; a miss answers 503 UNAVAILABLE too;
//   - /readyz says not ready;
//   - once PostgreSQL is back, the failed refresh is retried with no help
//     (the product turns fresh with a newer version), and mutations pass.
func TestPostgresStopped(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	loadDemo(t, srv.URL())
	g := start(t, true, []string{"KCK_POSTGRES_URL=" + srv.URL()}, "--log-level", "info")

	status, before := g.fetch(t, "title_list/42")
	require.Equal(t, http.StatusOK, status)
	require.False(t, before.Stale)
	status, stats := g.fetch(t, "author_stats/42")
	require.Equal(t, http.StatusOK, status)
	db, err := source.Open(ctx(t), srv.URL())
	require.NoError(t, err)
	titles := titlesOf(t, db, 42)
	db.Close()

	srv.Stop()

	// Cached: served as they were.
	status, f := g.fetch(t, "title_list/42")
	require.Equal(t, http.StatusOK, status, "cached product served")
	assert.Equal(t, before.Version, f.Version)
	assert.JSONEq(t, string(before.Value), string(f.Value))

	// Mutations: 503 UNAVAILABLE.
	r := g.do(t, "POST", "/update", `{"name":"add_title","input":{"authorId":42,"title":"While down","year":2026}}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
	assert.JSONEq(t, `{"error":{"code":"UNAVAILABLE","message":"the source database is unavailable; retry later"}}`, string(r.body))
	_, gr := g.graphql(t, `mutation { addTitle(authorId: 42, title: "While down", year: 2026) { title { id } } }`)
	require.NotEmpty(t, gr.Errors)
	assert.Equal(t, "UNAVAILABLE", gr.Errors[0].Extensions.Code, "typed mutation")
	_, gr = g.graphql(t, `mutation { update(name: "add_title", input: {authorId: 42, title: "While down", year: 2026}) { name } }`)
	require.NotEmpty(t, gr.Errors)
	assert.Equal(t, "UNAVAILABLE", gr.Errors[0].Extensions.Code, "update mutation")

	// A miss (an author boot warming did not read): 503 UNAVAILABLE, not
	// a 502 or a 500.
	status, f = g.fetch(t, "title_list/900001")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "UNAVAILABLE", f.Error.Code)

	// A refresh fails: the value it kept is served flagged stale.
	_, gr = g.graphql(t, `mutation { refresh(key: "title_list/42") { version } }`)
	require.NotEmpty(t, gr.Errors)
	assert.Equal(t, "UNAVAILABLE", gr.Errors[0].Extensions.Code)
	status, f = g.fetch(t, "title_list/42")
	require.Equal(t, http.StatusOK, status)
	assert.True(t, f.Stale, "kept after a failed refresh: flagged stale")
	assert.Equal(t, before.Version, f.Version)
	_, gr = g.graphql(t, `{ titleList(authorId: 42) { id } }`)
	assert.Empty(t, gr.Errors)
	assert.Contains(t, compact(gr.Data["titleList"]), `"id"`)
	status, _ = g.fetch(t, "author_stats/42")
	assert.Equal(t, http.StatusOK, status, "another cached product")
	require.Eventually(t, func() bool { return g.ready(t) == http.StatusServiceUnavailable }, time.Minute, 50*time.Millisecond)

	srv.Start()

	// The failed refresh is retried: fresh again, newer version.
	require.Eventually(t, func() bool {
		status, f := g.fetch(t, "title_list/42")
		if status != http.StatusOK || f.Stale {
			return false
		}
		v0, _ := strconv.ParseUint(before.Version, 10, 64)
		v1, _ := strconv.ParseUint(f.Version, 10, 64)
		return v1 > v0
	}, 2*time.Minute, 50*time.Millisecond, "refreshed once PostgreSQL is back")
	gatewaytest.WaitReady(t, client, g.base)

	// Nothing of the refused mutations was written.
	db, err = source.Open(ctx(t), srv.URL())
	require.NoError(t, err)
	defer db.Close()
	assert.Equal(t, titles, titlesOf(t, db, 42), "nothing half-written")

	// Mutations pass again, read-your-writes.
	r = g.do(t, "POST", "/update", `{"name":"add_title","input":{"authorId":42,"title":"After","year":2026}}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, titles+1, titlesOf(t, db, 42))
	status, f = g.fetch(t, "author_stats/42")
	require.Equal(t, http.StatusOK, status)
	assert.NotEqual(t, stats.Version, f.Version)
}

// The gateway's LISTEN connection alone is cut (its backend terminated)
// and a row changes while it cannot reconnect (new connections to the
// database refused): once it is back, the change is seen, with no
// notification of it ever delivered.
func TestListenConnectionCut(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	loadDemo(t, srv.URL())
	g := start(t, true, []string{"KCK_POSTGRES_URL=" + srv.URL()}, "--log-level", "info")
	status, f := g.fetch(t, "author/42")
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, string(f.Value), "Renamed while away")

	admin, err := source.Open(ctx(t), srv.AdminURL())
	require.NoError(t, err)
	defer admin.Close()
	db, err := source.Open(ctx(t), srv.URL()) // connected before the refusal
	require.NoError(t, err)
	defer db.Close()
	_, err = admin.Exec(ctx(t), `ALTER DATABASE kck WITH ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	var pid int32
	require.NoError(t, admin.QueryRow(ctx(t),
		`SELECT pid FROM pg_stat_activity WHERE datname = 'kck' AND application_name = $1`, source.FollowerApplicationName).Scan(&pid))
	_, err = admin.Exec(ctx(t), `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		err := admin.QueryRow(ctx(t), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n)
		return err == nil && n == 0
	}, time.Minute, 10*time.Millisecond, "the listening backend is gone")
	_, err = db.Exec(ctx(t), `UPDATE authors SET name = 'Renamed while away' WHERE id = 42`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return g.ready(t) == http.StatusServiceUnavailable }, time.Minute, 50*time.Millisecond,
		"not ready while the change feed is down")
	_, err = admin.Exec(ctx(t), `ALTER DATABASE kck WITH ALLOW_CONNECTIONS true`)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		status, f := g.fetch(t, "author/42")
		return status == http.StatusOK && !f.Stale && json0(f.Value, "Renamed while away")
	}, 2*time.Minute, 50*time.Millisecond, "caught up after the reconnect")
	gatewaytest.WaitReady(t, client, g.base)
}

func json0(v []byte, s string) bool { return strings.Contains(compact(v), s) }
