package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/internal/metrictest"
)

// wsClient speaks graphql-transport-ws (or, with legacy, graphql-ws) over a
// real WebSocket to a real gateway.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	legacy bool
	ctx    context.Context
}

// wsMsg is one protocol message.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialWS connects and completes connection_init with payload (nil: none).
func dialWS(t *testing.T, baseURL string, legacy bool, payload any) *wsClient {
	t.Helper()
	c, err := tryDialWS(t, baseURL, legacy, payload, nil)
	require.NoError(t, err)
	return c
}

func tryDialWS(t *testing.T, baseURL string, legacy bool, payload any, hdr http.Header) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	proto := "graphql-transport-ws"
	if legacy {
		proto = "graphql-ws"
	}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{proto}, HTTPHeader: hdr})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: t, conn: conn, legacy: legacy, ctx: ctx}
	init := wsMsg{Type: "connection_init"}
	if payload != nil {
		init.Payload, _ = json.Marshal(payload)
	}
	c.send(init)
	for {
		m, err := c.read()
		if err != nil {
			return c, err
		}
		switch m.Type {
		case "connection_ack":
			return c, nil
		case "connection_error":
			return c, fmt.Errorf("connection_error: %s", m.Payload)
		}
	}
}

func (c *wsClient) send(m wsMsg) {
	c.t.Helper()
	b, err := json.Marshal(m)
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.Write(c.ctx, websocket.MessageText, b))
}

// read returns the next message, answering pings and skipping keepalives.
func (c *wsClient) read() (wsMsg, error) {
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return wsMsg{}, err
		}
		var m wsMsg
		if err := json.Unmarshal(b, &m); err != nil {
			return wsMsg{}, err
		}
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			b, _ := json.Marshal(wsMsg{Type: "pong"})
			if err := c.conn.Write(c.ctx, websocket.MessageText, b); err != nil {
				return wsMsg{}, err
			}
			continue
		}
		return m, nil
	}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.legacy {
		typ = "start"
	}
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	c.send(wsMsg{ID: id, Type: typ, Payload: p})
}

// next returns the next message for id: its payload and type ("next" or
// "data", "error", "complete").
func (c *wsClient) next(id string) (string, json.RawMessage) {
	c.t.Helper()
	for {
		m, err := c.read()
		require.NoError(c.t, err)
		if m.ID == id {
			return m.Type, m.Payload
		}
	}
}

// data returns the data of the next result for id, failing on anything else.
func (c *wsClient) data(id string) map[string]json.RawMessage {
	c.t.Helper()
	typ, p := c.next(id)
	require.Contains(c.t, []string{"next", "data"}, typ, "payload %s", p)
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []any                      `json:"errors"`
	}
	require.NoError(c.t, json.Unmarshal(p, &r))
	require.Empty(c.t, r.Errors, "%s", p)
	return r.Data
}

// failure returns the error code and limit of the next message for id,
// which must be an error message.
func (c *wsClient) failure(id string) (code, limit string) {
	c.t.Helper()
	typ, p := c.next(id)
	var errs []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	// A subscription that does not start gets the protocol's error
	// message, on either protocol: never a result with errors and then
	// complete, which a client reads as a value and a normal end.
	if typ != "error" {
		c.t.Fatalf("want an error for %s, got %s %s", id, typ, p)
	}
	require.NoError(c.t, json.Unmarshal(p, &errs), "%s", p)
	require.NotEmpty(c.t, errs)
	code, _ = errs[0].Extensions["code"].(string)
	limit, _ = errs[0].Extensions["limit"].(string)
	return code, limit
}

// closeCode waits for the server to close the connection and returns its code.
func (c *wsClient) closeCode() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.read()
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

type subProduct struct {
	Key     string          `json:"key"`
	Version string          `json:"version"`
	Value   json.RawMessage `json:"value"`
}

func productOf(t *testing.T, d map[string]json.RawMessage) subProduct {
	t.Helper()
	var p subProduct
	require.NoError(t, json.Unmarshal(d["product"], &p))
	return p
}

func version(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err)
	return v
}

func (e *env) addTitle(t *testing.T, author int, title string) {
	t.Helper()
	r := e.do(t, "POST", "/update", fmt.Sprintf(`{"name":"add_title","input":{"authorId":%d,"title":%q,"year":2026}}`, author, title))
	require.Equal(t, http.StatusOK, r.status, r.body)
}

const titlesSub = `subscription($a: Int!) { titleList(authorId: $a) { id title } }`

func titlesOf(t *testing.T, d map[string]json.RawMessage) []string {
	t.Helper()
	var ts []struct{ Title string }
	require.NoError(t, json.Unmarshal(d["titleList"], &ts))
	out := make([]string, len(ts))
	for i, x := range ts {
		out[i] = x.Title
	}
	return out
}

// The generated subscription field pushes the current value, then the new
// version after an updater, on both protocols.
func TestSubscriptionPushesNewVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "graphql-transport-ws", true: "graphql-ws"}[legacy], func(t *testing.T) {
			c := dialWS(t, e.url, legacy, nil)
			c.subscribe("1", titlesSub, map[string]any{"a": 42})
			typ, raw := c.next("1")
			require.Contains(t, []string{"next", "data"}, typ)
			var msg struct {
				Data       map[string]json.RawMessage
				Extensions struct {
					KCK struct {
						Products []struct{ Key, Version string }
					}
				}
			}
			require.NoError(t, json.Unmarshal(raw, &msg))
			first := titlesOf(t, msg.Data)
			require.NotEmpty(t, first)
			// Each message lists its product's freshness, as a query does.
			require.Len(t, msg.Extensions.KCK.Products, 1, "%s", raw)
			assert.Equal(t, "title_list/42", msg.Extensions.KCK.Products[0].Key)
			cur, ok := e.cache.Peek("title_list/42")
			require.True(t, ok)
			assert.Equal(t, strconv.FormatUint(cur, 10), msg.Extensions.KCK.Products[0].Version)
			name := "Pushed " + strconv.FormatBool(legacy)
			e.addTitle(t, 42, name)
			second := titlesOf(t, c.data("1"))
			assert.Contains(t, second, name)
			assert.Len(t, second, len(first)+1)
			// Stop ends it: the server completes (graphql-ws) or just stops.
			if legacy {
				c.send(wsMsg{ID: "1", Type: "stop"})
			} else {
				c.send(wsMsg{ID: "1", Type: "complete"})
			}
		})
	}
}

// An update of a product another reads cascades to the dependent, and its
// subscriber sees the new version; product(key) carries the version, and
// sinceVersion resumes from one.
func TestSubscriptionProductKeyAndSinceVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const q = `subscription($k: String!, $v: String) { product(key: $k, sinceVersion: $v) { key version value } }`
	count := func(p subProduct) int {
		var v struct{ TitleCount int }
		require.NoError(t, json.Unmarshal(p.Value, &v))
		return v.TitleCount
	}
	// until reads a subscription until its value counts want titles; the
	// versions only increase on the way (an update refreshes author_stats
	// and cascades to it from title_list: versions in between may come).
	until := func(c *wsClient, id string, after uint64, want int) subProduct {
		t.Helper()
		for {
			p := productOf(t, c.data(id))
			require.Greater(t, version(t, p.Version), after)
			after = version(t, p.Version)
			if count(p) == want {
				return p
			}
		}
	}
	titles := func() int { return len(e.ds.TitlesBy(42)) }

	c := dialWS(t, e.url, false, nil)
	c.subscribe("s", q, map[string]any{"k": "author_stats/42"})
	p0 := productOf(t, c.data("s"))
	assert.Equal(t, "author_stats/42", p0.Key)
	e.addTitle(t, 42, "Cascade")
	p1 := until(c, "s", version(t, p0.Version), titles())

	// Resuming at a version sends nothing until a newer one: the first
	// message is newer than the version given.
	cur, err := e.cache.Get(context.Background(), "author_stats/42")
	require.NoError(t, err)
	r := dialWS(t, e.url, false, nil)
	r.subscribe("r", q, map[string]any{"k": "author_stats/42", "v": strconv.FormatUint(cur.Version, 10)})
	e.addTitle(t, 42, "After resume")
	until(r, "r", cur.Version, titles())

	// A client that missed several versions gets the newest only: its
	// first message is the current value, with every title.
	e.addTitle(t, 42, "Missed 1")
	e.addTitle(t, 42, "Missed 2")
	want := titles()
	var newest uint64
	require.Eventually(t, func() bool { // the cascades run after the updates
		r, err := e.cache.Get(context.Background(), "author_stats/42")
		require.NoError(t, err)
		newest = r.Version
		return count(subProduct{Value: r.Value}) == want
	}, 2*time.Minute, 5*time.Millisecond)
	m := dialWS(t, e.url, false, nil)
	m.subscribe("m", q, map[string]any{"k": "author_stats/42", "v": p1.Version})
	got := productOf(t, m.data("m"))
	assert.GreaterOrEqual(t, version(t, got.Version), newest)
	assert.Equal(t, want, count(got))

	// A malformed sinceVersion is the client's error.
	m.subscribe("bad", q, map[string]any{"k": "author_stats/42", "v": "yesterday"})
	code, _ := m.failure("bad")
	assert.Equal(t, "BAD_USER_INPUT", code)
	m.subscribe("nokey", q, map[string]any{"k": "no_such/1"})
	code, _ = m.failure("nokey")
	assert.Equal(t, "NOT_FOUND", code)
}

// A subscriber that does not read while many versions are made ends up
// with the newest, having been sent versions in increasing order only.
func TestSubscriptionSlowConsumerGetsTheNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const q = `subscription { product(key: "counted/1") { version value } }`
	c := dialWS(t, e.url, false, nil)
	c.subscribe("s", q, nil)
	prev := version(t, productOf(t, c.data("s")).Version)
	var newest uint64
	for range 200 {
		r, err := e.cache.Refresh(context.Background(), "counted/1")
		require.NoError(t, err)
		newest = r.Version
	}
	got := 0
	for prev < newest {
		typ, raw := c.next("s")
		require.Equal(t, "next", typ)
		var msg struct {
			Data       map[string]json.RawMessage
			Extensions struct {
				KCK struct{ Products []struct{ Version string } }
			}
		}
		require.NoError(t, json.Unmarshal(raw, &msg))
		pv := productOf(t, msg.Data).Version
		v := version(t, pv)
		require.Greater(t, v, prev, "versions arrive newer each time")
		require.Len(t, msg.Extensions.KCK.Products, 1)
		require.Equal(t, pv, msg.Extensions.KCK.Products[0].Version, "each message's extensions are its own value's")
		prev = v
		got++
	}
	assert.Equal(t, newest, prev)
	t.Logf("200 versions made while the client did not read; it received %d", got)
}

// The WebSocket connections a gateway holds are bounded, idle or not: one
// more is refused with 503 before the upgrade, and a closed one frees its
// place. A message larger than a request body may be ends its connection.
func TestWebSocketConnectionBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) {
		o.Subscriptions.MaxConnections = 2
		o.MaxBodyBytes = 4 << 10
	})
	a := dialWS(t, e.url, false, nil)
	dialWS(t, e.url, true, nil)
	_, err := tryDialWS(t, e.url, false, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_refused_total", gqlhttp.LimitConnections))
	// And over plain HTTP, the refusal says why.
	req, err := http.NewRequest("GET", e.url+"/graphql", nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(body), "LIMIT_EXCEEDED")

	_ = a.conn.Close(websocket.StatusNormalClosure, "")
	var c *wsClient
	require.Eventually(t, func() bool {
		c, err = tryDialWS(t, e.url, false, nil, nil)
		return err == nil
	}, 2*time.Minute, 10*time.Millisecond, "a closed connection frees its place")

	// A message over the body limit closes the connection (1009).
	big := strings.Repeat("x", 8<<10)
	c.subscribe("1", `subscription { product(key: "counted/1") { version } } # `+big, nil)
	_, _, err = c.conn.Read(c.ctx)
	require.Error(t, err)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "%v", err)
}

func TestSubscriptionBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) {
		o.Subscriptions.MaxPerConnection = 2
		o.Subscriptions.MaxTotal = 3
	})
	sub := func(c *wsClient, id string) {
		c.subscribe(id, `subscription { product(key: "counted/1") { version } }`, nil)
	}
	a := dialWS(t, e.url, false, nil)
	sub(a, "1")
	a.data("1")
	sub(a, "2")
	a.data("2")
	sub(a, "3")
	typ, _ := a.next("3")
	assert.Equal(t, "error", typ, "a refused subscription gets the protocol's error, not next and complete")
	sub(a, "3")
	code, limit := a.failure("3")
	assert.Equal(t, "LIMIT_EXCEEDED", code)
	assert.Equal(t, graph.LimitSubscriptionsPerConnection, limit)

	b := dialWS(t, e.url, true, nil)
	sub(b, "1")
	b.data("1")
	sub(b, "2")
	code, limit = b.failure("2")
	assert.Equal(t, "LIMIT_EXCEEDED", code)
	assert.Equal(t, graph.LimitSubscriptions, limit)

	// Ending one frees its slot.
	a.send(wsMsg{ID: "1", Type: "complete"})
	assert.Eventually(t, func() bool {
		return metrictest.Value(t, e.metrics, "kck_subscriptions_active") == 2
	}, 2*time.Minute, 5*time.Millisecond)
	sub(b, "3")
	b.data("3")
	assert.Equal(t, 3.0, metrictest.Value(t, e.metrics, "kck_refused_total", graph.LimitSubscriptions)+
		metrictest.Value(t, e.metrics, "kck_refused_total", graph.LimitSubscriptionsPerConnection))

	// Closing a connection frees its subscriptions.
	_ = a.conn.Close(websocket.StatusNormalClosure, "")
	assert.Eventually(t, func() bool {
		return metrictest.Value(t, e.metrics, "kck_subscriptions_active") == 2
	}, 2*time.Minute, 5*time.Millisecond)
}

// The document limits apply to subscription documents.
func TestSubscriptionDocumentLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := dialWS(t, e.url, false, nil)
	var b strings.Builder
	b.WriteString(`subscription { product(key: "counted/1") {`)
	for i := range 31 {
		fmt.Fprintf(&b, " a%d: version", i)
	}
	b.WriteString(" } }")
	c.subscribe("a", b.String(), nil)
	code, limit := c.failure("a")
	assert.Equal(t, "LIMIT_EXCEEDED", code)
	assert.Equal(t, gqlhttp.LimitAliases, limit)
	// And an invalid document is an error, the connection stays usable.
	c.subscribe("b", `subscription { nope }`, nil)
	code, _ = c.failure("b")
	assert.NotEmpty(t, code)
	c.subscribe("c", `subscription { product(key: "counted/1") { version } }`, nil)
	c.data("c")
}

func TestSubscriptionAuth(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	tok := e.hs(t, "5", "stats:read")
	stats := `subscription($a: Int!) { authorStats(authorId: $a) { authorId titleCount } }`

	// Authorization in connection_init, as Apollo's and urql's users send it.
	c := dialWS(t, e.url, false, map[string]any{"Authorization": "Bearer " + tok})
	c.subscribe("own", stats, map[string]any{"a": 5})
	c.data("own")
	c.subscribe("other", stats, map[string]any{"a": 6})
	code, _ := c.failure("other")
	assert.Equal(t, "FORBIDDEN", code)
	// The per-user product is keyed by the connection's sub.
	c.subscribe("mine", `subscription { myTitles { authorId } }`, nil)
	var mine []struct{ AuthorID int }
	require.NoError(t, json.Unmarshal(c.data("mine")["myTitles"], &mine))
	for _, m := range mine {
		assert.Equal(t, 5, m.AuthorID)
	}

	// authToken, the older habit, on the older protocol.
	l := dialWS(t, e.url, true, map[string]any{"authToken": tok})
	l.subscribe("own", stats, map[string]any{"a": 5})
	l.data("own")

	// No token: public products only.
	anon := dialWS(t, e.url, false, nil)
	anon.subscribe("x", stats, map[string]any{"a": 5})
	code, _ = anon.failure("x")
	assert.Equal(t, "UNAUTHENTICATED", code)
	anon.subscribe("pub", titlesSub, map[string]any{"a": 5})
	anon.data("pub")

	// An invalid token: refused at connection_init, closed with 4403.
	for _, p := range []map[string]any{{"Authorization": "Bearer not.a.jwt"}, {"Authorization": 42}, {"authToken": "x.y.z"}} {
		_, err := tryDialWS(t, e.url, false, p, nil)
		assert.Equal(t, websocket.StatusCode(4403), websocket.CloseStatus(err), "%v: %v", p, err)
	}
	// graphql-ws says why in connection_error first.
	bad, err := tryDialWS(t, e.url, true, map[string]any{"authToken": "x.y.z"}, nil)
	require.ErrorContains(t, err, "connection_error")
	assert.Equal(t, websocket.StatusCode(4403), bad.closeCode())

	// A token that expires closes its connection with 4403 at exp, with no
	// leeway (a request's leeway forgives a clock skew for the moment it
	// takes; a connection would live on half a minute past exp).
	claims := e.claims("5", "stats:read")
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	claims["exp"] = exp.Unix()
	short := dialWS(t, e.url, false, map[string]any{"Authorization": "Bearer " + sign(t, jwt.SigningMethodHS256, e.keys.secret, claims, nil)})
	short.subscribe("own", stats, map[string]any{"a": 5})
	short.data("own")
	assert.Equal(t, websocket.StatusCode(4403), short.closeCode())
	closed := time.Now()
	assert.False(t, closed.Before(exp), "closed %v before exp %v", closed, exp)
	assert.Less(t, closed.Sub(exp), 15*time.Second, "closed at exp, not at exp plus the leeway (30 s)")

	// One past its exp but inside the leeway is refused at connection_init.
	claims["exp"] = e.clock.Now().Add(-5 * time.Second).Unix()
	late := sign(t, jwt.SigningMethodHS256, e.keys.secret, claims, nil)
	_, err = tryDialWS(t, e.url, false, map[string]any{"Authorization": "Bearer " + late}, nil)
	assert.Equal(t, websocket.StatusCode(4403), websocket.CloseStatus(err), "%v", err)
	// (Over HTTP the leeway holds.)
	r, _ := e.gql(t, `{"query":"{ authorStats(authorId: 5) { titleCount } }"}`, bearer(late)...)
	assert.Equal(t, http.StatusOK, r.status, r.body)
}

// rawWS opens a graphql-transport-ws connection and sends nothing.
func rawWS(t *testing.T, baseURL string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx}
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.Write(c.ctx, websocket.MessageText, []byte(s)))
}

// graphql-transport-ws's close codes for a client that breaks the protocol
// (gqlgen's transport closes with 1002 for each).
func TestGraphQLTransportWSCloseCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.Subscriptions.InitTimeout = 300 * time.Millisecond })
	const init = `{"type":"connection_init"}`
	const sub = `{"id":"1","type":"subscribe","payload":{"query":"subscription { product(key: \"counted/1\") { version } }"}}`
	for _, tc := range []struct {
		name string
		send []string
		want websocket.StatusCode
	}{
		{"subscribe before connection_init", []string{sub}, 4401},
		{"a second connection_init", []string{init, init}, 4429},
		{"not JSON", []string{"garbage"}, 4400},
		{"not JSON after init", []string{init, "{nope"}, 4400},
		{"no type", []string{init, `{"id":"1"}`}, 4400},
		{"a server's message", []string{init, `{"id":"1","type":"next","payload":{}}`}, 4400},
		{"subscribe without an id", []string{init, `{"type":"subscribe","payload":{"query":"{ __typename }"}}`}, 4400},
		{"subscribe without a query", []string{init, `{"id":"1","type":"subscribe","payload":{}}`}, 4400},
		{"an id in use", []string{init, sub, sub}, 4409},
		{"no connection_init in time", nil, 4408},
	} {
		c := rawWS(t, e.url)
		for _, m := range tc.send {
			c.sendRaw(m)
		}
		assert.Equal(t, tc.want, c.closeCode(), tc.name)
	}

	// An id may be used again once its subscription completed.
	c := dialWS(t, e.url, false, nil)
	c.sendRaw(`{"id":"q","type":"subscribe","payload":{"query":"subscription { product(key: \"nope/1\") { version } }"}}`)
	typ, _ := c.next("q")
	assert.Equal(t, "error", typ)
	c.sendRaw(`{"id":"q","type":"subscribe","payload":{"query":"subscription { product(key: \"counted/1\") { version } }"}}`)
	c.data("q")
	c.send(wsMsg{ID: "q", Type: "complete"})
	c.sendRaw(`{"id":"q","type":"subscribe","payload":{"query":"subscription { product(key: \"counted/2\") { version } }"}}`)
	// gqlgen may confirm the client's complete, or not (the protocol does
	// not ask it to; whether it does races the operation's end): the next
	// result for q is the new subscription's, after that confirmation if any.
	typ, p := c.next("q")
	if typ == "complete" {
		typ, p = c.next("q")
	}
	require.Equal(t, "next", typ, "payload %s", p)
	assert.Contains(t, string(p), `"version"`)
	// The older protocol is left as it was.
	l := dialWS(t, e.url, true, nil)
	l.subscribe("1", `subscription { product(key: "counted/1") { version } }`, nil)
	l.data("1")
}

// Keepalive: "ka" on graphql-ws; a ping on graphql-transport-ws, and a
// client that never answers with pong is disconnected.
func TestSubscriptionKeepAlive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.Subscriptions.KeepAlive = 50 * time.Millisecond })
	raw := func(c *wsClient) (wsMsg, error) {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return wsMsg{}, err
		}
		var m wsMsg
		require.NoError(t, json.Unmarshal(b, &m))
		return m, nil
	}
	legacy := dialWS(t, e.url, true, nil)
	for kas := 0; kas < 3; {
		m, err := raw(legacy)
		require.NoError(t, err)
		if m.Type == "ka" {
			kas++
		}
	}

	// graphql-transport-ws on a gateway with a longer interval, so that a
	// busy machine's late read or pong still comes within the two
	// intervals the server waits.
	e2 := newEnv(t, func(o *gateway.Options) { o.Subscriptions.KeepAlive = 300 * time.Millisecond })
	c := dialWS(t, e2.url, false, nil)
	m, err := raw(c)
	require.NoError(t, err)
	require.Equal(t, "ping", m.Type)
	c.send(wsMsg{Type: "pong"})
	for {
		m, err := raw(c)
		if err != nil {
			break // no pong for two intervals: the server hung up
		}
		require.Equal(t, "ping", m.Type, "nothing but pings on an idle connection")
	}
	// A client that answers stays connected, ping after ping.
	ok := dialWS(t, e2.url, false, nil)
	ok.subscribe("1", `subscription { product(key: "counted/1") { version } }`, nil)
	ok.data("1")
	for pings := 0; pings < 4; {
		m, err := raw(ok)
		require.NoError(t, err, "answered pings keep the connection")
		if m.Type == "ping" {
			pings++
			ok.send(wsMsg{Type: "pong"})
		}
	}
}

// A client that stops reading is disconnected once a write has waited
// WriteTimeout, and its subscriptions end: the gateway holds no queue.
func TestSubscriptionStuckClientIsDisconnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.Subscriptions.WriteTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	big := strings.Repeat("x", 256<<10)
	_, err := e.cache.Set(ctx, "blob/1", big)
	require.NoError(t, err)
	c := dialWS(t, e.url, false, nil)
	c.subscribe("s", `subscription { product(key: "blob/1") { version value } }`, nil)
	c.data("s")
	require.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_subscriptions_active"))
	// The client reads nothing more; the socket's buffers fill.
	require.Eventually(t, func() bool {
		_, err := e.cache.Set(ctx, "blob/1", big)
		require.NoError(t, err)
		return metrictest.Value(t, e.metrics, "kck_subscriptions_active") == 0
	}, 2*time.Minute, 10*time.Millisecond)
}
