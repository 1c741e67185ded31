package admin_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/natstest"
)

// Two gateways on a real Cassandra cluster, each with its own session and
// bus connection (as two processes would be): each lists the other, and an
// invalidation by prefix on one drops the other's in-process copies.
func TestTwoGatewaysOnCassandra(t *testing.T) {
	t.Parallel()
	ks := cassandratest.Keyspace(t)
	open := func() *cassandra.Store {
		s, err := cassandra.Open(t.Context(), ks)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	bus, cluster := natstest.Start(t), natstest.Cluster(t)
	a := newEnv(t, envOpts{noScheduler: true, store: open(), bus: bus, cluster: cluster})
	b := newEnv(t, envOpts{noScheduler: true, store: open(), bus: bus, cluster: cluster})
	var cl struct {
		Gateways []admin.Gateway `json:"gateways"`
	}
	require.Eventually(t, func() bool {
		a.do(t, "GET", "/admin/api/cluster", "").json(t, &cl)
		return len(cl.Gateways) == 2
	}, time.Minute, 100*time.Millisecond, "a lists b")
	require.Equal(t, b.cache.Owner(), cl.Gateways[1].Owner)

	for _, k := range []string{"title_list/42", "title_list/43"} {
		require.Equal(t, 200, b.do(t, "GET", "/fetch?key="+k, "").status)
	}
	var conf admin.Outcome
	r := a.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/4","dryRun":true}`)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &conf)
	require.Equal(t, 2, conf.Keys, "a finds b's keys in the cluster")
	r = a.do(t, "POST", "/admin/api/invalidate", body(map[string]any{"prefix": "title_list/4", "confirm": conf.Keys}))
	require.Equal(t, 200, r.status, string(r.body))
	require.Eventually(t, func() bool {
		return b.do(t, "GET", "/admin/api/key?key=title_list/42", "").status == 404 &&
			b.do(t, "GET", "/admin/api/key?key=title_list/43", "").status == 404
	}, time.Minute, 50*time.Millisecond, "b dropped its copies")
}
