package dynamic_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph/dynamic"
	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/trusted"
)

// Everything the gateway does for a compiled field it does for a dynamic
// one: each test below is one of the gateway's features on shelfBooks.

func serve(t *testing.T, r *rig) string {
	t.Helper()
	hs := httptest.NewServer(r.h)
	t.Cleanup(hs.Close)
	return hs.URL
}

func postTo(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func gql(query string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

func decode(t *testing.T, b []byte) reply {
	t.Helper()
	var rep reply
	require.NoError(t, json.Unmarshal(b, &rep), string(b))
	return rep
}

func TestDynamicLimits(t *testing.T) {
	t.Parallel()
	metrics := prometheus.NewRegistry()
	r := newRig(t, shelfSpec, func(o *gateway.Options) {
		o.Limits = gqlhttp.Limits{MaxComplexity: 15, MaxAliases: 2}
		o.Registerer, o.Gatherer = metrics, metrics
	})
	// One product field costs --product-cost (10) plus its children.
	assert.Empty(t, r.query(`{ shelfBooks(shelfId: 7) { id } }`, nil).Errors)
	rep := r.query(`{ a: shelfBooks(shelfId: 7) { id } b: shelfBooks(shelfId: 7) { id } }`, nil)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, "LIMIT_EXCEEDED", rep.Errors[0].Extensions["code"])
	assert.Equal(t, "complexity", rep.Errors[0].Extensions["limit"])
	assert.Contains(t, rep.Errors[0].Message, "complexity 22")
	rep = r.query(`{ a: shelfBooks(shelfId: 7) { x: id y: id } }`, nil)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, "aliases", rep.Errors[0].Extensions["limit"])
	assert.Equal(t, 2.0, metrictest.Value(t, metrics, "kck_refused_total", "complexity")+metrictest.Value(t, metrics, "kck_refused_total", "aliases"))
}

func TestDynamicAuth(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	spec := shelfSpec
	spec.Products = append(spec.Products, dynamic.Product{
		Name: "shelf_secrets", Field: "shelfSecrets", Args: []dynamic.Arg{{Name: "shelfId", Type: "Int!"}}, Type: "JSON",
		Pos: dynamic.Pos{File: "shelf_secrets.sql", Line: 1},
	})
	r := newRig(t, spec, func(o *gateway.Options) {
		o.Auth = v
		o.Cache.Registry().MustRegister(primers.Product{
			Name: "shelf_secrets", Params: []primers.Param{{Name: "shelf_id", Kind: primers.Int}},
			Auth:   primers.Auth{Scopes: []string{"shelf:read"}, Bind: map[string]string{"shelf_id": "sub"}},
			Primer: primers.Func1(func(_ context.Context, id int64) (string, error) { return fmt.Sprint("secret ", id), nil }),
		})
	})
	url := serve(t, r)
	token := func(sub, scope string) string {
		tok, err := auth.MintHS256(secret, sub, scope, "", nil, time.Now(), time.Hour)
		require.NoError(t, err)
		return "Bearer " + tok
	}
	q := gql(`{ shelfSecrets(shelfId: 7) }`, nil)
	for _, tc := range []struct {
		name, authz, code, data string
		status                  int
	}{
		{"no token", "", "UNAUTHENTICATED", `{"shelfSecrets":null}`, 200},
		{"no scope", token("7", "other"), "FORBIDDEN", `{"shelfSecrets":null}`, 200},
		{"another shelf", token("8", "shelf:read"), "FORBIDDEN", `{"shelfSecrets":null}`, 200},
		{"allowed", token("7", "shelf:read"), "", `{"shelfSecrets":"secret 7"}`, 200},
		{"invalid token", "Bearer nope", "UNAUTHENTICATED", ``, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.authz != "" {
				hdr = []string{"Authorization", tc.authz}
			}
			resp, body := postTo(t, url+"/graphql", q, hdr...)
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			rep := decode(t, body)
			if tc.code != "" {
				require.NotEmpty(t, rep.Errors, string(body))
				assert.Equal(t, tc.code, rep.Errors[0].Extensions["code"])
			} else {
				assert.Empty(t, rep.Errors)
			}
			if tc.data != "" {
				assert.JSONEq(t, tc.data, string(rep.Data))
			}
		})
	}
	// A public dynamic product needs no token, with auth on.
	resp, body := postTo(t, url+"/graphql", gql(`{ shelfBooks(shelfId: 7) { id } }`, nil))
	require.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, decode(t, body).Errors)
}

// The response cache replays a dynamic field's response while its product
// keeps its version, compressed once when asked; a write is seen at once.
func TestDynamicResponseCacheAndCompression(t *testing.T) {
	t.Parallel()
	metrics := prometheus.NewRegistry()
	r := newRig(t, shelfSpec, func(o *gateway.Options) { o.Registerer, o.Gatherer, o.CompressMinBytes = metrics, metrics, -1 })
	url := serve(t, r)
	q := gql(`{ shelfBooks(shelfId: 7) { id title } }`, nil)
	_, first := postTo(t, url+"/graphql", q)
	primes := r.shelf.primes.Load()
	resp, second := postTo(t, url+"/graphql", q)
	assert.Equal(t, first, second)
	assert.Equal(t, 1.0, metrictest.Value(t, metrics, "kck_graphql_response_cache_total", "hit"))
	assert.Equal(t, primes, r.shelf.primes.Load(), "a hit runs nothing")
	assert.Empty(t, resp.Header.Get("Content-Encoding"))

	resp, gz := postTo(t, url+"/graphql", q, "Accept-Encoding", "gzip")
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, first, plain)

	_, _ = postTo(t, url+"/graphql", gql(`mutation { addBook(shelfId: 7, title: "New") { result { id } } }`, nil))
	_, after := postTo(t, url+"/graphql", q)
	assert.Contains(t, string(after), `"title":"New"`, "the write is seen by the next request")
}

// Automatic persisted queries and batches carry dynamic fields.
func TestDynamicAPQAndBatch(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec, func(o *gateway.Options) { o.Limits = gqlhttp.Limits{MaxBatch: 2} })
	base := serve(t, r)
	query := `{ shelfBooks(shelfId: 7) { title } }`
	sum := sha256.Sum256([]byte(query))
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hex.EncodeToString(sum[:]))
	get := func() reply {
		resp, err := http.Get(base + "/graphql?extensions=" + url.QueryEscape(ext))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return decode(t, b)
	}
	rep := get()
	require.NotEmpty(t, rep.Errors)
	assert.Equal(t, "PERSISTED_QUERY_NOT_FOUND", rep.Errors[0].Extensions["code"])
	_, body := postTo(t, base+"/graphql", fmt.Sprintf(`{"query":%q,"extensions":%s}`, query, ext))
	require.Empty(t, decode(t, body).Errors, string(body))
	rep = get()
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(rep.Data))

	resp, body := postTo(t, base+"/graphql", "["+gql(`{ shelfBooks(shelfId: 7) { id } }`, nil)+","+gql(`{ author(authorId: 1) { id } }`, nil)+"]")
	require.Equal(t, 200, resp.StatusCode, string(body))
	var batch []reply
	require.NoError(t, json.Unmarshal(body, &batch), string(body))
	require.Len(t, batch, 2)
	assert.JSONEq(t, `{"shelfBooks":[{"id":1},{"id":2}]}`, string(batch[0].Data))
	assert.JSONEq(t, `{"author":{"id":1}}`, string(batch[1].Data))
}

// A dynamic subscription over a WebSocket pushes the current value, then
// each new version, with its freshness; a typed mutation's write is one.
func TestDynamicSubscriptionOverWebSocket(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	base := serve(t, r)
	ws := dial(t, base)
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { shelfBooks(shelfId: 7) { title } }`}})
	first := ws.next(t, "1")
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(first.Data))
	assert.Contains(t, string(first.Extensions), `"key":"shelf_books/7"`)
	_, body := postTo(t, base+"/graphql", gql(`mutation { addBook(shelfId: 7, title: "Pushed") { result { id } } }`, nil))
	require.Empty(t, decode(t, body).Errors, string(body))
	next := ws.next(t, "1")
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"},{"title":"Pushed"}]}`, string(next.Data))
}

type wsConn struct {
	c   *websocket.Conn
	ctx context.Context
}

func dial(t *testing.T, base string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	ws := &wsConn{c: c, ctx: ctx}
	ws.send(map[string]any{"type": "connection_init"})
	for {
		m := ws.read(t)
		if m.Type == "connection_ack" {
			return ws
		}
	}
}

type wsMsg struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (ws *wsConn) send(m any) {
	b, _ := json.Marshal(m)
	_ = ws.c.Write(ws.ctx, websocket.MessageText, b)
}

func (ws *wsConn) read(t *testing.T) wsMsg {
	t.Helper()
	for {
		_, b, err := ws.c.Read(ws.ctx)
		require.NoError(t, err)
		var m wsMsg
		require.NoError(t, json.Unmarshal(b, &m))
		if m.Type == "ping" {
			ws.send(map[string]any{"type": "pong"})
			continue
		}
		return m
	}
}

// next is the next result for id.
func (ws *wsConn) next(t *testing.T, id string) reply {
	t.Helper()
	for {
		m := ws.read(t)
		if m.ID != id {
			continue
		}
		require.Equal(t, "next", m.Type, string(m.Payload))
		return decode(t, m.Payload)
	}
}

// The admin console lists a dynamic product and acts on its keys.
func TestDynamicAdminConsole(t *testing.T) {
	t.Parallel()
	metrics := prometheus.NewRegistry()
	var console *admin.Console
	r := newRig(t, shelfSpec, func(o *gateway.Options) {
		var err error
		console, err = admin.New(admin.Options{Cache: o.Cache, Gatherer: metrics, Open: true, HeartbeatInterval: -1})
		require.NoError(t, err)
		o.Admin, o.Registerer, o.Gatherer = console, metrics, metrics
	})
	t.Cleanup(func() { _ = console.Close() })
	base := serve(t, r)
	require.Empty(t, r.query(`{ shelfBooks(shelfId: 7) { id } }`, nil).Errors)
	resp, err := http.Get(base + "/admin/api/products")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(b), `"shelf_books"`)
	before := r.shelf.primes.Load()
	resp, body := postTo(t, base+"/admin/api/refresh", `{"key":"shelf_books/7"}`)
	require.Equal(t, 200, resp.StatusCode, string(body))
	assert.Equal(t, before+1, r.shelf.primes.Load(), "refreshed through the console")
}

// Trusted documents are validated against the merged schema: a dynamic
// field's document is trusted and runs in enforce mode; a manifest naming
// a field the schema lacks stops the gateway.
func TestDynamicTrustedDocuments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := `query Shelf { shelfBooks(shelfId: 7) { title } }`
	write := func(body string) string {
		sum := sha256.Sum256([]byte(body))
		path := filepath.Join(dir, hex.EncodeToString(sum[:4])+".json")
		b, _ := json.Marshal(map[string]any{"format": "apollo-persisted-query-manifest", "version": 1,
			"operations": []map[string]string{{"id": hex.EncodeToString(sum[:]), "name": "Shelf", "type": "query", "body": body}}})
		require.NoError(t, os.WriteFile(path, b, 0o644))
		return path
	}
	open := func(path string) *trusted.Store {
		st, err := trusted.Open(trusted.Options{Path: path, Mode: trusted.Enforce, Registerer: prometheus.NewRegistry()})
		require.NoError(t, err)
		return st
	}
	r := newRig(t, shelfSpec, func(o *gateway.Options) { o.Trusted = open(write(doc)) })
	rep := r.query(doc, nil)
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(rep.Data))
	rep = r.query(`{ shelfBooks(shelfId: 7) { id } }`, nil)
	require.NotEmpty(t, rep.Errors)
	assert.Equal(t, gqlhttp.CodePersistedQueryNotAllowed, rep.Errors[0].Extensions["code"])

	bad := open(write(`query Shelf { shelfBooks(shelfId: 7) { isbn } }`))
	reg := primers.NewRegistry()
	newShelf().register(t, reg)
	_, err := gateway.New(gateway.Options{Cache: newRig(t, shelfSpec).cache, Trusted: bad, Extend: extend(shelfSpec, reg),
		Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Cannot query field "isbn" on type "ShelfBooksRow"`)
}

// A schema swapped while serving (what a reload of --sql-dir does): the
// next requests see the new fields and not the removed ones, a response
// kept by the response cache under the old schema is not replayed, and a
// subscription open before the swap goes on.
func TestDynamicSchemaSwap(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	base := serve(t, r)
	ws := dial(t, base)
	ws.send(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": `subscription { shelfBooks(shelfId: 7) { title } }`}})
	ws.next(t, "s")
	q := gql(`{ shelfBooks(shelfId: 7) { title } }`, nil)
	_, before := postTo(t, base+"/graphql", q)
	require.Empty(t, decode(t, before).Errors)
	// A persisted query registered before the swap.
	persisted := `{ shelfBooks(shelfId: 7) { id } }`
	sum := sha256.Sum256([]byte(persisted))
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hex.EncodeToString(sum[:]))
	_, body := postTo(t, base+"/graphql", fmt.Sprintf(`{"query":%q,"extensions":%s}`, persisted, ext))
	require.Empty(t, decode(t, body).Errors)

	// The new API: shelfBooks typed with fewer fields, and a new product.
	next := dynamic.Spec{Products: []dynamic.Product{
		{Name: "shelf_books", Field: "shelfBooks", Args: []dynamic.Arg{{Name: "shelfId", Type: "Int!"}}, Type: "[Slim!]",
			Object: &dynamic.Object{Name: "Slim", Fields: []dynamic.Field{{Name: "id", Key: "id", Type: "Int!"}}}, Pos: dynamic.Pos{File: "shelf_books.sql", Line: 1}},
		{Name: "shelf_count", Field: "shelfCount", Type: "Int", Pos: dynamic.Pos{File: "shelf_count.sql", Line: 1}},
	}}
	var commit func()
	require.NoError(t, r.reg.Change(func(scratch *primers.Registry) error {
		if err := scratch.Register(primers.Product{Name: "shelf_count", Auth: primers.Auth{Public: true},
			Primer: primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 2, nil })}); err != nil {
			return err
		}
		var err error
		commit, err = r.gw.PrepareSchema(extend(next, scratch), scratch)
		return err
	}))
	commit()

	_, after := postTo(t, base+"/graphql", q)
	rep := decode(t, after)
	require.NotEmpty(t, rep.Errors, "the old response is not replayed: the field has no title now")
	assert.Contains(t, rep.Errors[0].Message, `Cannot query field "title" on type "Slim"`)
	got := r.query(`{ shelfBooks(shelfId: 7) { id } shelfCount }`, nil)
	require.Empty(t, got.Errors)
	assert.JSONEq(t, `{"shelfBooks":[{"id":1},{"id":2}],"shelfCount":2}`, string(got.Data))
	assert.NotNil(t, r.gw.Schema().Types["Slim"])
	assert.Nil(t, r.gw.Schema().Types["ShelfBooksRow"])

	// The persisted query outlives the swap: the hash alone still runs.
	_, body = postTo(t, base+"/graphql", fmt.Sprintf(`{"extensions":%s}`, ext))
	require.Empty(t, decode(t, body).Errors, string(body))

	// The subscription opened on the old schema still gets new versions.
	_, body = postTo(t, base+"/graphql", gql(`{ __typename }`, nil))
	require.Empty(t, decode(t, body).Errors)
	_, err := r.cache.Refresh(context.Background(), "shelf_books/7")
	require.NoError(t, err)
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(ws.next(t, "s").Data))

	// A schema that does not fit the registry is refused; the one in
	// force stays.
	_, err = r.gw.PrepareSchema(extend(dynamic.Spec{Products: []dynamic.Product{{Name: "nope", Field: "nope", Type: "Int", Pos: dynamic.Pos{File: "nope.sql", Line: 3}}}}, r.reg), r.reg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `nope.sql:3: Query.nope: bound to product "nope", which is not registered`)
	assert.Empty(t, r.query(`{ shelfCount }`, nil).Errors)
}

// A request under way when the schema is swapped finishes on the schema it
// started with, even when the new one no longer has its field.
func TestDynamicSwapInFlight(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	spec := shelfSpec
	spec.Products = append(spec.Products, dynamic.Product{Name: "slow", Field: "slow", Type: "String", Pos: dynamic.Pos{File: "slow.sql", Line: 1}})
	r := newRig(t, spec, func(o *gateway.Options) {
		o.Cache.Registry().MustRegister(primers.Product{Name: "slow", Auth: primers.Auth{Public: true},
			Primer: primers.PrimerFunc(func(ctx context.Context, _ primers.Key) (any, error) {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return "finally", nil
			})})
	})
	base := serve(t, r)
	done := make(chan []byte, 1)
	go func() {
		// No require here: not the test's goroutine.
		resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(gql(`{ slow }`, nil)))
		if err != nil {
			done <- []byte(err.Error())
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	<-entered
	commit, err := r.gw.PrepareSchema(extend(shelfSpec, r.reg), r.reg) // without slow
	require.NoError(t, err)
	commit()
	assert.NotEmpty(t, r.query(`{ slow }`, nil).Errors, "the next request runs on the new schema")
	close(release)
	rep := decode(t, <-done)
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"slow":"finally"}`, string(rep.Data))
}
