package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/gateway"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) {
		o.CORSOrigins = []string{"http://localhost:5173", "https://*.example.com"}
	})
	// Apollo Client's and urql's preflight (browsers send the header names sorted, lower case).
	pre := e.do(t, "OPTIONS", "/graphql", "",
		"Origin", "http://localhost:5173",
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "apollo-require-preflight,apollographql-client-name,apollographql-client-version,authorization,content-type,x-apollo-operation-name")
	require.Equal(t, http.StatusNoContent, pre.status, pre.body)
	assert.Equal(t, "http://localhost:5173", pre.header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", pre.header.Get("Access-Control-Allow-Credentials"))
	allowed := strings.ToLower(pre.header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"content-type", "authorization", "apollographql-client-name", "apollo-require-preflight", "x-apollo-operation-name"} {
		assert.Contains(t, allowed, h)
	}
	assert.Contains(t, pre.header.Get("Access-Control-Allow-Methods"), "POST")
	assert.Contains(t, pre.header.Get("Vary"), "Origin")

	// The same headers as others spell them: any case, any order, spaces,
	// several header lines, a name twice.
	for _, hdrs := range [][]string{
		{"Content-Type, Authorization"},
		{"authorization ,  CONTENT-TYPE,content-type"},
		{"Content-Type", "Authorization, Apollographql-Client-Name"},
	} {
		req, err := http.NewRequest("OPTIONS", e.url+"/graphql", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", "http://localhost:5173")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header["Access-Control-Request-Headers"] = hdrs
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, "http://localhost:5173", resp.Header.Get("Access-Control-Allow-Origin"), "%q", hdrs)
		assert.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization", "%q", hdrs)
	}
	assert.Zero(t, e.logs.Count("CORS preflight refused"))
	// A header no one allowed is refused, and the refusal is logged (once
	// per interval).
	for range 3 {
		pre = e.do(t, "OPTIONS", "/graphql", "", "Origin", "http://localhost:5173",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, x-secret")
		assert.Empty(t, pre.header.Get("Access-Control-Allow-Origin"))
	}
	assert.Equal(t, 1, e.logs.Count("CORS preflight refused"))
	assert.Equal(t, 1, e.logs.Count("x-secret"))

	// The request itself.
	r := e.do(t, "POST", "/graphql", gqlBody(`{ author(authorId: 42) { name } }`), "Origin", "https://app.example.com")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "https://app.example.com", r.header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", r.header.Get("Access-Control-Allow-Credentials"))
	assert.Contains(t, r.header.Get("Access-Control-Expose-Headers"), "Etag")
	assert.Contains(t, r.header.Get("Vary"), "Origin", "a CDN keeps the origins' answers apart")

	// Another origin gets no grant (the browser then hides the response).
	r = e.do(t, "POST", "/graphql", gqlBody(`{ author(authorId: 42) { name } }`), "Origin", "https://evil.test")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
	pre = e.do(t, "OPTIONS", "/graphql", "", "Origin", "https://evil.test", "Access-Control-Request-Method", "POST")
	assert.Empty(t, pre.header.Get("Access-Control-Allow-Origin"))

	// Subscriptions: the same origins may open the WebSocket, others not.
	hdr := http.Header{"Origin": {"http://localhost:5173"}}
	_, err := tryDialWS(t, e.url, false, nil, hdr)
	require.NoError(t, err)
	_, err = tryDialWS(t, e.url, false, nil, http.Header{"Origin": {"https://evil.test"}})
	require.Error(t, err)
}

func TestCORSAnyOriginAndOff(t *testing.T) {
	t.Parallel()
	any := newEnv(t, func(o *gateway.Options) { o.CORSOrigins = []string{"*"} })
	r := any.do(t, "POST", "/graphql", gqlBody(`{ author(authorId: 42) { name } }`), "Origin", "https://anywhere.test")
	// Echoed, not "*": a request with credentials may not be granted "*".
	assert.Equal(t, "https://anywhere.test", r.header.Get("Access-Control-Allow-Origin"))
	_, err := tryDialWS(t, any.url, false, nil, http.Header{"Origin": {"https://anywhere.test"}})
	require.NoError(t, err)

	off := newEnv(t)
	r = off.do(t, "POST", "/graphql", gqlBody(`{ author(authorId: 42) { name } }`), "Origin", "http://localhost:5173")
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "same origin only by default")
	_, err = tryDialWS(t, off.url, false, nil, http.Header{"Origin": {"http://localhost:5173"}})
	require.Error(t, err, "a cross-origin WebSocket is refused by default")
}

// A refused token's 401 carries the CORS grant, so the page can read why;
// its WWW-Authenticate is exposed.
func TestCORSOnAuthErrors(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, func(o *gateway.Options) { o.CORSOrigins = []string{"http://localhost:5173"} })
	r := e.do(t, "POST", "/graphql", statsQuery, "Origin", "http://localhost:5173", "Authorization", "Bearer not.a.jwt")
	require.Equal(t, http.StatusUnauthorized, r.status, r.body)
	assert.Equal(t, "http://localhost:5173", r.header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, r.header.Get("Access-Control-Expose-Headers"), "Www-Authenticate")
	// The preflight of a request with a token needs no token.
	pre := e.do(t, "OPTIONS", "/graphql", "", "Origin", "http://localhost:5173",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	assert.Equal(t, http.StatusNoContent, pre.status)
}
