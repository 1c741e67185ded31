package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/browsertest"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/source"
)

// gatewayPair starts two gateways on one Cassandra keyspace, both serving
// the demo's SQL products from one Postgres database, as a cluster does.
func gatewayPair(t *testing.T) (a, b, pgURL string) {
	t.Helper()
	pgURL, _ = demoDatabase(t)
	ks := cassandratest.Keyspace(t)
	var bases []string
	for range 2 {
		cfg := testConfig(t, t.TempDir())
		cfg.Store, cfg.Cassandra, cfg.PostgresURL, cfg.Bus.URL = "cassandra", ks, pgURL, natstest.URL(t)
		base, stop := startServe(t, cfg)
		t.Cleanup(func() { require.NoError(t, stop()) })
		bases = append(bases, base)
	}
	for _, base := range bases {
		waitReady(t, base)
	}
	return bases[0], bases[1], pgURL
}

// sub is one graphql-transport-ws subscription over a real WebSocket.
type sub struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
}

func subscribe(t *testing.T, base, query string) *sub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseNow() })
	s := &sub{t: t, ctx: ctx, conn: conn}
	s.write(map[string]any{"type": "connection_init"})
	s.write(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}})
	return s
}

func (s *sub) write(v any) {
	b, _ := json.Marshal(v)
	require.NoError(s.t, s.conn.Write(s.ctx, websocket.MessageText, b))
}

// next returns the data of the next result.
func (s *sub) next() map[string]json.RawMessage {
	s.t.Helper()
	for {
		_, b, err := s.conn.Read(s.ctx)
		require.NoError(s.t, err)
		var m struct {
			Type    string
			Payload struct {
				Data   map[string]json.RawMessage
				Errors []any
			}
		}
		require.NoError(s.t, json.Unmarshal(b, &m))
		switch m.Type {
		case "ping":
			s.write(map[string]any{"type": "pong"})
		case "next":
			require.Empty(s.t, m.Payload.Errors, "%s", b)
			return m.Payload.Data
		case "error", "complete":
			s.t.Fatalf("subscription ended: %s", b)
		}
	}
}

type pushed struct {
	Version string
	Value   []struct{ Title string }
}

func (s *sub) product() pushed {
	s.t.Helper()
	var p pushed
	require.NoError(s.t, json.Unmarshal(s.next()["product"], &p))
	return p
}

func titles(p pushed) []string {
	var out []string
	for _, v := range p.Value {
		out = append(out, v.Title)
	}
	return out
}

// A subscriber on one gateway is pushed the changes made anywhere: a row
// written in Postgres, an updater run on the other gateway, and a refresh
// on the other gateway (no row changed: only the change feed tells).
func TestSubscriptionsAcrossGateways(t *testing.T) {
	t.Parallel()
	a, b, pgURL := gatewayPair(t)
	s := subscribe(t, b, `subscription { product(key: "title_list/7") { version value } }`)
	typed := subscribe(t, b, `subscription { titleList(authorId: 7) { title } }`)
	p0 := s.product()
	typed.next()

	pool, err := source.Open(context.Background(), pgURL)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `INSERT INTO titles (author_id, title, year) VALUES (7, 'Row in Postgres', 2030)`)
	require.NoError(t, err)
	p1 := s.product()
	for !slices.Contains(titles(p1), "Row in Postgres") {
		p1 = s.product() // an intermediate version (the other gateway's refresh) may come first
	}
	assert.Greater(t, ver(t, p1.Version), ver(t, p0.Version))

	postJSON(t, a+"/update", `{"name":"add_title","input":{"authorId":7,"title":"Through A","year":2031}}`)
	for {
		var ts []struct{ Title string }
		require.NoError(t, json.Unmarshal(typed.next()["titleList"], &ts))
		if slices.Contains(titlesOf(ts), "Through A") {
			break
		}
	}

	// Drain what the row and the update pushed, then refresh on A: B's
	// subscriber gets that very version.
	require.Eventually(t, func() bool {
		v := postJSON(t, b+"/graphql", `{"query":"{ titleList(authorId: 7) { title } }"}`)
		return strings.Contains(fmt.Sprint(v), "Through A")
	}, 2*time.Minute, 10*time.Millisecond)
	r := postJSON(t, a+"/graphql", `{"query":"mutation { refresh(key: \"title_list/7\") { version } }"}`)
	want := r["data"].(map[string]any)["refresh"].(map[string]any)["version"].(string)
	for {
		p := s.product()
		if p.Version == want {
			break
		}
		require.Less(t, ver(t, p.Version), ver(t, want), "versions arrive in order, up to the refresh's")
	}
}

func ver(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err)
	return v
}

func titlesOf(ts []struct{ Title string }) []string {
	out := make([]string, len(ts))
	for i, x := range ts {
		out[i] = x.Title
	}
	return out
}

// graphql-ws's own client, in Node (browser/graphql-ws.mjs), against two
// gateways of one cluster: a row inserted in Postgres (through a helper the
// script calls), an updater on the other gateway, and sinceVersion.
func TestGraphQLWSClientAcrossGateways(t *testing.T) {
	t.Parallel()
	a, b, pgURL := gatewayPair(t)
	pool, err := source.Open(context.Background(), pgURL)
	require.NoError(t, err)
	defer pool.Close()
	insert := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := pool.Exec(r.Context(), `INSERT INTO titles (author_id, title, year) VALUES (7, $1, 2030)`, r.URL.Query().Get("title"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer insert.Close()
	browsertest.Run(t, t.Context(), "graphql-ws.mjs", a, b, insert.URL)
}
