package e2e

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/pgtest"
)

// sum adds a series over gateways.
func sum(t *testing.T, gws []*gateway, series string) float64 {
	t.Helper()
	var n float64
	for _, g := range gws {
		n += g.metric(t, series)
	}
	return n
}

// A source row change is consumed once per cluster: one gateway follows
// the change log, the affected key is refreshed by one gateway (one primer
// run in the cluster, however many gateways hold the key), and every
// gateway serves the new value. When the following gateway is killed,
// another follows within the lease, and a change made while none followed
// is not lost.
func TestSourceChangesOncePerCluster(t *testing.T) { onEachStore(t, testSourceChangesOnce) }

func testSourceChangesOnce(t *testing.T, s shared) {
	pg := pgtest.Database(t)
	out, err := exec.Command(binary, "demo", "load", "--postgres-url", pg).CombinedOutput()
	require.NoError(t, err, "%s", out)
	const lease = 2 * time.Second
	gws := startGateways(t, 3, s, "KCK_POSTGRES_URL="+pg, "KCK_FOLLOW_LEASE="+lease.String())
	const leader = `kck_leader{job="follow/source"}`
	require.Eventually(t, func() bool { return sum(t, gws, leader) == 1 }, time.Minute, 10*time.Millisecond, "one gateway follows")

	for _, g := range gws {
		_, err := g.fetch("author/7")
		require.NoError(t, err)
	}
	const runs = `kck_primer_runs_total{product="author"}`
	before := sum(t, gws, runs)
	update := func(name string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, pg)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `UPDATE authors SET name = $1 WHERE id = 7`, name)
		require.NoError(t, err)
	}
	servedBy := func(gws []*gateway, name string) func() bool {
		return func() bool {
			for _, g := range gws {
				f, err := g.fetch("author/7")
				if err != nil || !strings.Contains(string(f.Value), name) {
					return false
				}
			}
			return true
		}
	}
	update("Renamed once")
	require.Eventually(t, servedBy(gws, "Renamed once"), time.Minute, 10*time.Millisecond, "every gateway serves the new value")
	assert.Equal(t, before+1, sum(t, gws, runs), "one primer run in the cluster for the change")
	assert.Equal(t, float64(1), sum(t, gws, "kck_source_changes_total"), "the change was read once, by the follower")

	var lead *gateway
	var rest []*gateway
	for _, g := range gws {
		if g.metric(t, leader) == 1 {
			lead = g
		} else {
			rest = append(rest, g)
		}
	}
	require.NotNil(t, lead)
	require.NoError(t, lead.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	update("Renamed while nobody follows")
	require.Eventually(t, func() bool { return sum(t, rest, leader) == 1 }, time.Minute, 10*time.Millisecond, "another follows")
	t.Logf("another gateway followed %v after the follower was killed (lease %v)", time.Since(killed).Round(time.Millisecond), lease)
	require.Eventually(t, servedBy(rest, "Renamed while nobody follows"), time.Minute, 10*time.Millisecond, "the change made meanwhile was not lost")
}
