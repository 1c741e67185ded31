//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/source"
)

// boardKeys are the stale-able products: author_board, a product of the
// scenarios' own refreshed every 2 s by the scheduler (through the refresh
// queue), so that while Postgres is down its refreshes fail and the values
// they keep are served flagged stale.
const boardKeys = 20

var boardSQL = map[string]string{"author_board.sql": fmt.Sprintf(`-- kck:product author_board(author_id int)
-- kck:auth public
-- kck:result row
-- kck:source authors author_id=id
-- kck:refresh 2s
-- kck:warm_query SELECT id FROM authors WHERE id <= %d ORDER BY id
SELECT id, name FROM authors WHERE id = :author_id
`, boardKeys)}

func boardStream(rate float64, gws ...*gateway) stream {
	return stream{class: "stale-able reads", rate: rate, next: func(seq int64) call {
		return call{gw: gws[seq%int64(len(gws))], path: fmt.Sprintf("/fetch?key=author_board/%d", 1+(seq/int64(len(gws)))%boardKeys)}
	}}
}

// restorePostgres starts the suite's PostgreSQL again at cleanup, whatever
// failed: the next scenario needs it.
func restorePostgres(t *testing.T) {
	t.Cleanup(func() {
		if _, err := script("faults/postgres.sh", "start"); err != nil {
			t.Logf("restore PostgreSQL: %v", err)
		}
	})
}

func version(p product) uint64 {
	v, _ := strconv.ParseUint(p.Version, 10, 64)
	return v
}

// boardVersions reads every author_board key on g.
func boardVersions(t *testing.T, g *gateway) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for i := 1; i <= boardKeys; i++ {
		k := fmt.Sprintf("author_board/%d", i)
		p, err := g.fetch(k)
		require.NoError(t, err)
		out[k] = version(p)
	}
	return out
}

// boardFresh reports whether g serves every author_board key unflagged at
// a version newer than before[key].
func boardFresh(g *gateway, before map[string]uint64) bool {
	for k, v := range before {
		p, err := g.fetch(k)
		if err != nil || p.Stale || version(p) <= v {
			return false
		}
	}
	return true
}

// renameAuthor sets an author's name in the source, retrying the connection
// (Postgres may have just started), and returns when it committed.
func renameAuthor(t *testing.T, dsn string, id int, name string) time.Time {
	t.Helper()
	ctx := context.Background()
	var err error
	for t0 := time.Now(); time.Since(t0) < time.Minute; time.Sleep(50 * time.Millisecond) {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, dsn); err != nil {
			continue
		}
		_, err = conn.Exec(ctx, "UPDATE authors SET name = $1 WHERE id = $2", name, id)
		conn.Close(ctx)
		if err == nil {
			return time.Now()
		}
	}
	require.NoError(t, err, "rename author %d", id)
	return time.Time{}
}

// waitServed waits until every gateway serves key with want in its value
// and unflagged; returns how long it took. within is a hang guard: a
// refresh takes what a busy store gives it.
func waitServed(t *testing.T, key, want string, within time.Duration, gws ...*gateway) time.Duration {
	t.Helper()
	t0 := time.Now()
	var last string
	for time.Since(t0) < within {
		last = ""
		for _, g := range gws {
			p, err := g.fetch(key)
			if err != nil || p.Stale || !strings.Contains(string(p.Value), want) {
				last = fmt.Sprintf("%s: %s stale %v version %s (err %v)", g.name, p.Value, p.Stale, p.Version, err)
				break
			}
		}
		if last == "" {
			return time.Since(t0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.FailNow(t, "not caught up", "%s does not serve %q on every gateway within %v: %s", key, want, within, last)
	return 0
}

// queuePoisoned sums kck_queue_poisoned over the gateways (the queue is the
// cluster's: each reports the same rows).
func queuePoisoned(t *testing.T, gws ...*gateway) float64 {
	t.Helper()
	var n float64
	for _, g := range gws {
		n = max(n, g.metric("kck_queue_poisoned"))
	}
	return n
}

func tallyNotes(r *row, l *load, phases []string, classes ...string) {
	for _, ph := range phases {
		for _, c := range classes {
			tl := l.get(c, ph)
			r.note("%s, %s: %d sent, %s failed, %d stale, p50 %v, p99 %v, max %v", ph, c, tl.Sent, tl.failures(), tl.Stale,
				tl.Pct(50).Round(time.Millisecond), tl.Pct(99).Round(time.Millisecond), tl.Max.Round(time.Millisecond))
		}
	}
}

// PostgreSQL stopped (fast shutdown: connections cut) for ~18 s under two
// gateways on the shared Cassandra, with reads of warmed products, reads of
// products refreshed every 2 s, and writes: cached products are served
// throughout, those whose refresh failed flagged stale; writes are refused
// with 503 UNAVAILABLE, fast, and nothing acknowledged is lost; once
// Postgres is back the failed refreshes are retried (flags clear, versions
// move, the refresh queue poisons nothing), and the change listeners
// reconnect and catch up with a row changed right after the restart.
func TestPostgresStoppedUnderLoad(t *testing.T) {
	r := scenario(t, 50, "PostgreSQL stopped under load",
		"cached products served (0 failed reads), stale where a refresh failed and flagged; writes 503 UNAVAILABLE within the request timeout, none acknowledged lost; failed refreshes retried once it is back; the change listeners reconnect and catch up")
	dsn := database(t)
	restorePostgres(t)
	ks := keyspaceName(t)
	dir := sqlDir(t, boardSQL)
	a := startGateway(t, "a", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir})
	b := startGateway(t, "b", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir})
	w := newWrites(uniqueName(t))
	l := startLoad(hotStream(100, a, b), boardStream(20, a, b), w.stream(5, a, b))
	defer l.stop()
	time.Sleep(8 * time.Second) // a few scheduled refreshes pass
	beforeA, beforeB := boardVersions(t, a), boardVersions(t, b)

	l.setPhase("postgres down")
	_, err := script("faults/postgres.sh", "stop")
	require.NoError(t, err)
	stopped := time.Now()
	// The typed mutation answers as /update does.
	st, body, err := a.post("/graphql", `{"query":"mutation { addTitle(authorId: 3, title: \"while down\", year: 2026) { title { id } } }"}`)
	require.NoError(t, err)
	assert.Equal(t, 200, st, "%s", body)
	assert.Contains(t, string(body), `"code":"UNAVAILABLE"`, "addTitle while Postgres is down: %s", body)
	time.Sleep(time.Until(stopped.Add(18 * time.Second)))

	l.setPhase("after")
	_, err = script("faults/postgres.sh", "start")
	require.NoError(t, err)
	back := time.Now() // pg_isready answered
	renamed := renameAuthor(t, dsn, 7, "Renamed after the restart")
	caught := waitServed(t, "author/7", "Renamed after the restart", 4*time.Minute, a, b)
	require.Eventually(t, func() bool { return boardFresh(a, beforeA) && boardFresh(b, beforeB) }, 2*time.Minute, 100*time.Millisecond,
		"every author_board key fresh again, at a newer version, on both gateways")
	cleared := time.Since(back)
	lastFail := waitQuiet(t, l, "after", phase(10*time.Second), 3*time.Minute)
	l.stop()
	dc := w.converge(t, dsn, 2*time.Minute, a, b)
	// The schedule goes on: after the outage its refreshes still run.
	a1, b1 := boardVersions(t, a), boardVersions(t, b)
	require.Eventually(t, func() bool { return boardFresh(a, a1) && boardFresh(b, b1) }, time.Minute, 200*time.Millisecond,
		"the scheduled refresh of author_board runs again")
	poisoned := queuePoisoned(t, a, b)

	down := l.get("stale-able reads", "postgres down")
	for _, c := range []string{"hot reads", "stale-able reads"} {
		tl := l.get(c)
		assert.Zero(t, tl.Failed, "%s failed: %s", c, tl.failures())
	}
	assert.Positive(t, down.Stale, "reads of products whose refresh failed are flagged stale")
	wr := l.get("writes", "postgres down")
	assert.Positive(t, wr.Failed, "writes while Postgres is down are refused")
	for s := range l.get("writes").Statuses {
		assert.Equal(t, "503 UNAVAILABLE", s, "refused writes answer 503 UNAVAILABLE")
	}
	assert.Less(t, wr.Max, requestTimeout, "writes answered within the request timeout")
	assert.Zero(t, poisoned, "refreshes that failed while Postgres was down are not poisoned in the refresh queue")
	all := l.all()
	assert.Zero(t, all.Overrun, "the load generator fell behind")

	recover := time.Duration(0)
	if !lastFail.IsZero() {
		recover = lastFail.Sub(back)
	}
	r.Load = l.held() + ", 2 gateways"
	r.Failed = fmt.Sprintf("hot reads %s; stale-able reads %s; writes %s", l.get("hot reads").failures(), l.get("stale-able reads").failures(), l.get("writes").failures())
	r.Stale = fmt.Sprintf("%d reads flagged stale while down (%d of %d stale-able reads), %d after", down.Stale, down.Stale, down.Sent, l.get("stale-able reads", "after").Stale)
	r.DataLost = fmt.Sprintf("%s; %d refused writes present in Postgres", dc, len(dc.halfWritten))
	r.Recover = fmt.Sprintf("last failed request %.1f s after Postgres answered; stale flags cleared after %.1f s; a row changed after the restart served by both gateways %.1f s after its commit",
		max(0, recover.Seconds()), cleared.Seconds(), caught.Seconds())
	r.note("Postgres stopped (fast shutdown) for %.0f s; the stale-able products are author_board/1..%d, refreshed every 2 s through the refresh queue", back.Sub(stopped).Seconds(), boardKeys)
	tallyNotes(r, l, []string{"before", "postgres down", "after"}, "hot reads", "stale-able reads", "writes")
	r.note("writes: %d acknowledged, %d refused; every acknowledged one is in Postgres and in both gateways' title_list; refused ones present in Postgres anyway (a COMMIT in flight as the server stopped, whose outcome the client cannot know): %d, and they too reached the products (%.1f s to converge)",
		dc.acked, dc.failed, len(dc.halfWritten), dc.took.Seconds())
	r.note("the typed mutation addTitle while down: `%s`", strings.TrimSpace(string(body)))
	r.note("change listeners: author/7 renamed %.1f s after Postgres answered, served renamed by both gateways %.1f s after the commit", renamed.Sub(back).Seconds(), caught.Seconds())
	r.note("refresh queue: %g keys poisoned after the outage", poisoned)
}

// listenBackends lists the connections that follow the change log on the
// scenario's database (one per cluster: the follower's), by the last
// statement each sent, which only the follower sends.
func listenBackends(ctx context.Context, conn *pgx.Conn) ([]int32, error) {
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND query ~ '^(LISTEN `+source.Channel+`|SELECT xid::text|UPDATE kck_source_position|INSERT INTO kck_source_position|DELETE FROM kck_source_changes)' ORDER BY pid`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}

// The change log follower's connection alone is cut (its backend
// terminated) under the same load, and a source row changes before it is
// back: nothing fails, and both gateways serve the change once the
// follower reconnected (a notification it never received: it reads the
// log from its position).
func TestListenConnectionCutUnderLoad(t *testing.T) {
	r := scenario(t, 60, "The LISTEN connection cut", "0 failed requests; a row changed while the follower's connection is cut is served by both gateways once it reconnects")
	dsn := database(t)
	ks := keyspaceName(t)
	dir := sqlDir(t, boardSQL)
	a := startGateway(t, "a", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir})
	b := startGateway(t, "b", gatewayConfig{keyspace: ks, postgres: dsn, sqlDir: dir})
	w := newWrites(uniqueName(t))
	l := startLoad(hotStream(100, a, b), boardStream(20, a, b), w.stream(5, a, b))
	defer l.stop()
	hold(5 * time.Second)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var before []int32
	require.Eventually(t, func() bool {
		before, err = listenBackends(ctx, conn)
		return err == nil && len(before) == 1
	}, time.Minute, 50*time.Millisecond, "one connection follows the change log, for the cluster")

	l.setPhase("cut")
	// One transaction: the backend is terminated (waited for) before the
	// change commits, so its notification reaches no listener.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	var gone int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM unnest($1::int[]) AS p WHERE pg_terminate_backend(p, 10000)`, before).Scan(&gone))
	_, err = tx.Exec(ctx, "UPDATE authors SET name = 'Renamed while cut' WHERE id = 9")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	committed := time.Now()
	require.Equal(t, 1, gone, "the follower's backend terminated")
	caught := waitServed(t, "author/9", "Renamed while cut", 4*time.Minute, a, b)
	var after []int32
	require.Eventually(t, func() bool {
		after, err = listenBackends(ctx, conn)
		return err == nil && len(after) == 1
	}, time.Minute, 50*time.Millisecond, "the follower reconnected")
	reconnected := time.Since(committed)
	assert.NotContains(t, after, before[0])

	l.setPhase("after")
	hold(5 * time.Second)
	l.stop()
	dc := w.converge(t, dsn, 2*time.Minute, a, b)

	all := l.all()
	assert.Zero(t, all.Failed, "failed requests: %s", all.failures())
	assert.Zero(t, all.Overrun, "the load generator fell behind")

	r.Load = l.held() + ", 2 gateways"
	r.Failed = all.failures()
	r.Stale = fmt.Sprint(all.Stale)
	r.DataLost = dc.String()
	r.Recover = fmt.Sprintf("the change served by both gateways %.2f s after its commit", caught.Seconds())
	r.note("the follower's backend (one per cluster) terminated (pg_terminate_backend, waited for) in the transaction that renamed author 9; its new one was there %.2f s after the commit (polled after the change was served)", reconnected.Seconds())
	tallyNotes(r, l, []string{"before", "cut", "after"}, "hot reads", "stale-able reads", "writes")
	b2, _ := json.Marshal(after)
	r.note("follower backends before %v, after %s", before, b2)
}
