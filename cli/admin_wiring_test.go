package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/source"
)

// --admin is on by default (go run .), off with --production unless asked.
func TestAdminFlag(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.Admin)
	cfg, err = parseServe([]string{"--production"}, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.Admin)
	cfg, err = parseServe([]string{"--production", "--admin"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.Admin)
	cfg, err = parseServe([]string{"--admin=false"}, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.Admin)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil && resp.StatusCode == 200 {
		require.NoError(t, json.Unmarshal(b, v), string(b))
	}
	return resp.StatusCode
}

// The whole gateway on the SQL demo: the console shows each product's
// source tables (and draws them in the graph), and a change in Postgres
// lands in the source-to-fresh lag histogram. With --admin=false there is
// no console.
func TestServeAdminConsole(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	cfg := testConfig(t, t.TempDir())
	cfg.PostgresURL = url
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	waitReady(t, base)
	titleCount(t, base) // author_stats/7 reads title_list/7

	var o admin.Overview
	require.Equal(t, 200, getJSON(t, base+"/admin/api/overview", &o))
	var tl *admin.Product
	for i := range o.Products {
		if o.Products[i].Name == "title_list" {
			tl = &o.Products[i]
		}
	}
	require.NotNil(t, tl)
	assert.Equal(t, []string{"titles author_id"}, tl.Policy.Sources)
	assert.Contains(t, tl.Policy.Domain, "author_ids")
	require.NotNil(t, o.Queue, "the scheduler runs: the queue is shown")
	assert.True(t, o.Open)

	var g struct {
		Nodes []admin.GraphNode `json:"nodes"`
		Edges []admin.GraphEdge `json:"edges"`
	}
	require.Equal(t, 200, getJSON(t, base+"/admin/api/graph", &g))
	assert.Contains(t, g.Nodes, admin.GraphNode{ID: "titles", Kind: "source"})
	assert.Contains(t, g.Edges, admin.GraphEdge{From: "titles", To: "title_list", Why: "source"})

	pool, err := source.Open(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `INSERT INTO titles (author_id, title, year) VALUES (7, 'Seen by the console', 2030)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		require.Equal(t, 200, getJSON(t, base+"/admin/api/overview", &o))
		return o.Fresh.SourceToFresh.Count > 0 && o.Fresh.SourceToFresh.P99 != nil
	}, 2*time.Minute, 50*time.Millisecond, "the change's lag is observed")

	cfg2 := testConfig(t, t.TempDir())
	cfg2.Admin, cfg2.Scheduler = false, false
	base2, stop2 := startServe(t, cfg2)
	defer func() { require.NoError(t, stop2()) }()
	assert.Equal(t, 404, getJSON(t, base2+"/admin/api/overview", nil))
	assert.Equal(t, 404, getJSON(t, base2+"/admin", nil))
}
