package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/metrictest"
)

func getQuery(q string, vars map[string]any) string {
	v := url.Values{"query": {q}}
	if vars != nil {
		b, _ := json.Marshal(vars)
		v.Set("variables", string(b))
	}
	return "/graphql?" + v.Encode()
}

// GET responses carry Cache-Control from the products' freshness and an
// ETag; If-None-Match answers 304.
func TestGraphQLGetCachingHeaders(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(e *env, o *cache.Options) { o.Clock = e.clock })
	path := getQuery(`{ product(key: "soft/1") { value } }`, nil)
	r := e.do(t, "GET", path, "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "public, max-age=60", r.header.Get("Cache-Control"))
	etag := r.header.Get("ETag")
	require.NotEmpty(t, etag)
	assert.Contains(t, r.header.Values("Vary"), "Accept")

	// Replayed from the response cache: the same headers; 304 when the
	// client holds it.
	again := e.do(t, "GET", path, "", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, again.status)
	assert.Empty(t, again.body)
	assert.Equal(t, etag, again.header.Get("ETag"))
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "hit"))

	e.clock.Advance(45 * time.Second)
	r = e.do(t, "GET", path, "", "If-None-Match", `"other", W/`+etag)
	assert.Equal(t, http.StatusNotModified, r.status, "a weak match in a list")
	assert.Equal(t, "public, max-age=15", r.header.Get("Cache-Control"))

	// The smallest time left wins; a product that never expires makes
	// the response revalidate each time.
	r = e.do(t, "GET", getQuery(`{ a: product(key: "soft/1") { key } b: product(key: "soft/2") { key } }`, nil), "")
	assert.Equal(t, "public, max-age=15", r.header.Get("Cache-Control"))
	r = e.do(t, "GET", getQuery(`{ a: product(key: "soft/1") { key } b: product(key: "counted/1") { key } }`, nil), "")
	assert.Equal(t, "public, no-cache", r.header.Get("Cache-Control"))

	// Errors: no-store.
	r = e.do(t, "GET", getQuery(`{ product(key: "failing/1") { key } }`, nil), "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	assert.Empty(t, r.header.Get("ETag"))
	r = e.do(t, "GET", getQuery(`{ nope }`, nil), "")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
}

func TestGraphQLGetPrivateWithAuth(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	tok := e.hs(t, "5", "stats:read")
	r := e.do(t, "GET", getQuery(`{ titleList(authorId: 5) { id } }`, nil), "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "public, no-cache", r.header.Get("Cache-Control"))
	r = e.do(t, "GET", getQuery(`{ titleList(authorId: 5) { id } authorStats(authorId: 5) { titleCount } }`, nil), "", bearer(tok)...)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "private, no-cache", r.header.Get("Cache-Control"))
	r = e.do(t, "GET", getQuery(`{ authorStats(authorId: 5) { titleCount } }`, nil), "")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"), "an UNAUTHENTICATED error")
}

// Apollo's persisted-query link with useGETForHashedQueries: the hash
// alone over GET, the query over POST when the gateway does not know it
// yet, then the hash alone again, cacheable.
func TestGraphQLGetAPQ(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(e *env, o *cache.Options) { o.Clock = e.clock })
	q := `query Soft($k: String!) { product(key: $k) { key value } }`
	sum := sha256.Sum256([]byte(q))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	get := "/graphql?" + url.Values{"operationName": {"Soft"}, "variables": {`{"k":"soft/3"}`}, "extensions": {ext}}.Encode()

	r := e.do(t, "GET", get, "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	g := decode[map[string]json.RawMessage](t, r.body)
	assert.NotContains(t, g, "data", "refused before execution: no data entry")
	assert.Contains(t, string(g["errors"]), "PERSISTED_QUERY_NOT_FOUND")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))

	body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"k": "soft/3"}, "extensions": json.RawMessage(ext)})
	r = e.do(t, "POST", "/graphql", string(body))
	require.Equal(t, http.StatusOK, r.status, r.body)

	r = e.do(t, "GET", get, "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, `{"key":"soft/3","value":3}`, string(decode[gqlReply](t, r.body).Data["product"]))
	assert.Equal(t, "public, max-age=60", r.header.Get("Cache-Control"))
	assert.NotEmpty(t, r.header.Get("ETag"))
}

// The GraphQL over HTTP specification's status codes and shapes.
func TestGraphQLOverHTTPSpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.Limits.MaxBatch = 2 })
	const gqlJSON = "application/graphql-response+json"

	// A mutation over GET: 405 with Allow.
	r := e.do(t, "GET", getQuery(`mutation { invalidate(key: "counted/1") }`, nil), "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status, r.body)
	assert.Equal(t, "POST", r.header.Get("Allow"))

	// The media type when asked; no data entry when a document does not
	// parse or validate (400 with graphql-response+json).
	for _, q := range []string{`{ product(key: "counted/1") { key `, `{ nope }`, `query A { __typename } query A { __typename }`} {
		r = e.do(t, "POST", "/graphql", gqlBody(q), "Accept", gqlJSON)
		assert.Equal(t, http.StatusBadRequest, r.status, r.body)
		assert.Equal(t, gqlJSON, r.header.Get("Content-Type"))
		g := decode[map[string]json.RawMessage](t, r.body)
		assert.NotContains(t, g, "data", q)
		assert.Contains(t, g, "errors")
		r = e.do(t, "POST", "/graphql", gqlBody(q))
		assert.NotContains(t, decode[map[string]json.RawMessage](t, r.body), "data", q)
	}
	r = e.do(t, "POST", "/graphql", gqlBody(`{ product(key: "counted/1") { key } }`), "Accept", gqlJSON)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, gqlJSON, r.header.Get("Content-Type"))

	// A resolver's error says what failed, without the location prefix.
	r = e.do(t, "POST", "/graphql", gqlBody("{\n  product(key: \"no_such/1\") { key } }"))
	g := decode[gqlReply](t, r.body)
	require.NotEmpty(t, g.Errors)
	assert.NotRegexp(t, `^input:\d+:\d+`, g.Errors[0].Message)
	assert.NotContains(t, g.Errors[0].Message, "product unknown", "nor the path")
	assert.Contains(t, r.body, `"data":{"product":null}`, "an executed operation keeps its data")

	// Malformed and batched bodies are client errors, never a panic.
	for _, b := range []string{`[{"query":1}]`, `[{"query":"{ nope }"},{"query":"{ __typename }"}]`, `[{}, {}, {}]`, `[1]`, `{"query": "{ __typename }", "variables": 3}`, `{"query"`} {
		r = e.do(t, "POST", "/graphql", b)
		assert.Less(t, r.status, 500, b)
		assert.True(t, json.Valid([]byte(r.body)), b)
	}
	r = e.do(t, "POST", "/graphql", `[{"query":"{ nope }"},{"query":"{ __typename }"}]`)
	items := decode[[]map[string]json.RawMessage](t, r.body)
	require.Len(t, items, 2)
	assert.NotContains(t, items[0], "data", "the failed item has no data entry")
	assert.Contains(t, items[1], "data")
	n, errs := e.logs.Errors()
	assert.Zero(t, n, "%v", errs)
	assert.Zero(t, e.logs.Count("panicked"))
}
