//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeClusterEnv makes scripts/faults/postgres.sh act on the suite's
// second PostgreSQL cluster, the store's when it has one of its own.
func storeClusterEnv() []string {
	return []string{
		"KCK_FAULTS_PG_NAME=" + envOr("KCK_FAULTS_STORE_PG_NAME", "faultstore"),
		"KCK_FAULTS_PG_PORT=" + envOr("KCK_FAULTS_STORE_PG_PORT", "5441"),
	}
}

// storeDatabase starts the second cluster, creates an empty database there
// for a scenario's store and returns its DSN; at cleanup the database is
// dropped and the cluster stopped (no other scenario uses it).
func storeDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	out, err := scriptEnv(storeClusterEnv(), "faults/postgres.sh", "start")
	require.NoError(t, err, "start the store's PostgreSQL cluster")
	adminDSN := strings.TrimSpace(out)
	t.Cleanup(func() { _, _ = scriptEnv(storeClusterEnv(), "faults/postgres.sh", "stop") })
	name := uniqueName(t)
	admin, err := pgx.Connect(ctx, adminDSN)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	admin.Close(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Runs before the cluster stops (cleanups run last registered first).
		if _, err := scriptEnv(storeClusterEnv(), "faults/postgres.sh", "start"); err != nil {
			return
		}
		admin, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return strings.Replace(adminDSN, "/kck?", "/"+name+"?", 1)
}

// The PostgreSQL store (issue 25) stopped under load, two gateways on it
// with its own change bus (LISTEN/NOTIFY, no NATS): first with the store in
// a cluster of its own (the source up), then with the store in the source's
// database (both down at once).
func TestPostgresStoreStopped(t *testing.T) {
	t.Run("OwnCluster", func(t *testing.T) {
		r := scenario(t, 52, "The PostgreSQL store's database stopped (a cluster of its own; the source up)",
			"2 gateways on --store postgres, its LISTEN/NOTIFY bus: hot products served from memory (0 failed), flagged stale; misses and writes answered from the source as on Cassandra (or 503 UNAVAILABLE), within the request timeout; nothing acknowledged lost; full recovery, no manual step")
		storeDown(t, r, false)
	})
	t.Run("SameDatabase", func(t *testing.T) {
		r := scenario(t, 54, "The PostgreSQL store's database stopped (the source's database: both down)",
			"hot products served from memory (0 failed), flagged stale; misses and writes 503 UNAVAILABLE within the request timeout; nothing acknowledged lost; full recovery, no manual step")
		storeDown(t, r, true)
	})
}

func storeDown(t *testing.T, r *row, sameDB bool) {
	dsn := database(t)
	var env []string
	stop := func() { _, err := script("faults/postgres.sh", "stop"); require.NoError(t, err) }
	start := func() { _, err := script("faults/postgres.sh", "start"); require.NoError(t, err) }
	where := "in the source's database (schema kck)"
	if sameDB {
		restorePostgres(t)
	} else {
		store := storeDatabase(t)
		env = []string{"KCK_STORE_POSTGRES_URL=" + store}
		stop = func() { _, err := scriptEnv(storeClusterEnv(), "faults/postgres.sh", "stop"); require.NoError(t, err) }
		start = func() {
			_, err := scriptEnv(storeClusterEnv(), "faults/postgres.sh", "start")
			require.NoError(t, err)
		}
		where = "in a database of its own on a second PostgreSQL cluster (port " + envOr("KCK_FAULTS_STORE_PG_PORT", "5441") + ")"
	}
	cfg := gatewayConfig{store: "postgres", postgres: dsn, env: env}
	a := startGateway(t, "a", cfg)
	b := startGateway(t, "b", cfg)
	gws := []*gateway{a, b}
	w := newWrites(uniqueName(t))
	l := startLoad(hotStream(100, a, b), missStream(2, a, b), w.stream(5, a, b))
	defer l.stop()
	hold(6 * time.Second)
	lost0 := perGateway(t, "kck_bus_disconnects_total", gws...)
	resync0 := perGateway(t, "kck_bus_resyncs_total", gws...)

	l.setPhase("stopping") // until both gateways noticed
	stop()
	stopped := time.Now()
	noticed := waitMoved(t, "kck_bus_disconnects_total", lost0, 30*time.Second, gws...)
	l.setPhase("store down")
	time.Sleep(time.Until(stopped.Add(phase(16 * time.Second))))

	l.setPhase("after")
	start()
	back := time.Now() // pg_isready answered
	resynced := waitMoved(t, "kck_bus_resyncs_total", resync0, 2*time.Minute, gws...)
	renamed := renameAuthor(t, dsn, 7, "Renamed after the restart")
	caught := waitServed(t, "author/7", "Renamed after the restart", 2*time.Minute, gws...)
	lastFail := waitQuiet(t, l, "after", phase(10*time.Second), 3*time.Minute)
	l.setPhase("recovered")
	hold(4 * time.Second)
	l.stop()
	dc := w.converge(t, dsn, 2*time.Minute, gws...)

	hot, misses, writes := l.get("hot reads"), l.get("misses", "stopping", "store down"), l.get("writes", "stopping", "store down")
	down := l.get("hot reads", "store down")
	recovered := l.get("hot reads", "recovered")
	assert.Zero(t, hot.Failed, "hot reads failed: %s", hot.failures())
	assert.GreaterOrEqual(t, float64(down.Stale), 0.9*float64(down.Sent), "hot reads flagged stale while the store (and its bus) is down: %d of %d", down.Stale, down.Sent)
	assert.Zero(t, recovered.Stale, "hot reads flagged stale after recovery")
	for _, tl := range []*tally{misses, writes, l.get("misses"), l.get("writes")} {
		for st := range tl.Statuses {
			assert.Equal(t, "503 UNAVAILABLE", st, "misses and writes fail with 503 UNAVAILABLE only")
		}
		assert.Less(t, tl.Max, requestTimeout, "answered within the request timeout")
	}
	if sameDB {
		assert.Positive(t, writes.Failed, "writes refused while the source is down")
	}
	assert.Zero(t, l.all().Overrun, "the load generator fell behind")

	recover := time.Duration(0)
	if !lastFail.IsZero() {
		recover = lastFail.Sub(back)
	}
	r.Load = l.held() + ", 2 gateways"
	r.Failed = fmt.Sprintf("hot reads %s; misses %s; writes %s", hot.failures(), l.get("misses").failures(), l.get("writes").failures())
	r.Stale = fmt.Sprintf("%d of %d hot reads while down (%.1f %%); %d after recovery", down.Stale, down.Sent, 100*float64(down.Stale)/float64(max(1, down.Sent)), recovered.Stale)
	r.DataLost = fmt.Sprintf("%s; %d refused writes present in Postgres", dc, len(dc.halfWritten))
	r.Recover = fmt.Sprintf("last failed request %.1f s after the database answered; both gateways' buses back (tier dropped) %.1f s after; a row changed after the restart served by both %.2f s after its commit",
		max(0, recover.Seconds()), resynced.Seconds(), caught.Seconds())
	r.note("the store %s, the change bus its LISTEN/NOTIFY; stopped (fast shutdown) for %.0f s; both gateways counted the bus lost within %v of the stop command (phase \"stopping\"; its reads are not expected flagged)", where, back.Sub(stopped).Seconds(), noticed.Round(time.Millisecond))
	tallyNotes(r, l, []string{"before", "stopping", "store down", "after", "recovered"}, "hot reads", "misses", "writes")
	r.note("writes: %d acknowledged, %d refused; every acknowledged one in Postgres and in both gateways' title_list (%.1f s to converge); refused ones present in Postgres anyway (a COMMIT in flight as the server stopped): %d",
		dc.acked, dc.failed, dc.took.Seconds(), len(dc.halfWritten))
	r.note("change following: author/7 renamed %.1f s after the database answered, served renamed by both gateways %.2f s after the commit", renamed.Sub(back).Seconds(), caught.Seconds())
}
