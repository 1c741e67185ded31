package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A draining gateway: /readyz answers 503 at once while every request is
// still served, each response asking its client to close the connection;
// WebSockets, old and new, stay until CloseWebSockets, which closes them
// with 1001 and refuses new ones with 503.
func TestDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(e.url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, _ := get("/readyz")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get("/fetch?key=title_list/42")
	require.False(t, resp.Close, "keep-alive before the drain")

	before := dialWS(t, e.url, false, nil)
	before.subscribe("1", titlesSub, map[string]any{"a": 42})
	before.data("1")

	e.srv.Drain()
	resp, body := get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "draining: the gateway is shutting down\n", body)
	for _, path := range []string{"/fetch?key=title_list/42", "/healthz"} {
		resp, _ = get(path)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.True(t, resp.Close, "%s: Connection: close while draining", path)
	}
	r := e.do(t, "POST", "/graphql", gqlBody(`{ titleList(authorId: 42) { title } }`))
	assert.Equal(t, http.StatusOK, r.status, r.body)

	during := dialWS(t, e.url, true, nil) // graphql-ws: an upgrade is not told to close
	during.subscribe("1", titlesSub, map[string]any{"a": 42})
	during.data("1")

	// The clients read on, as real ones do: CloseWebSockets returns once
	// they have answered the close.
	codes := make(chan websocket.StatusCode, 2)
	for _, c := range []*wsClient{before, during} {
		go func() { codes <- c.closeCode() }()
	}
	n, err := e.srv.CloseWebSockets(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for range 2 {
		assert.Equal(t, websocket.StatusGoingAway, <-codes)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	conn, wsResp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if conn != nil {
		_ = conn.CloseNow()
	}
	require.Error(t, err, "a new WebSocket is refused")
	require.NotNil(t, wsResp)
	assert.Equal(t, http.StatusServiceUnavailable, wsResp.StatusCode)
	assert.Equal(t, "1", wsResp.Header.Get("Retry-After"))

	resp, _ = get("/fetch?key=title_list/42")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "requests are still served: closing the listener is the server's")
}
