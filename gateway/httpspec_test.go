package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/browsertest"
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

// Media types: a POST whose body is not JSON is 415 on every route, and
// the response cache never answers it (an answer must not depend on what is
// cached); Accept's q-values pick the response type; each type has its own
// ETag.
func TestGraphQLMediaTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := gqlBody(`{ product(key: "counted/1") { key } }`)
	for range 2 { // the second time, the response cache holds the answer
		r := e.do(t, "POST", "/graphql", q)
		require.Equal(t, http.StatusOK, r.status, r.body)
		for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
			"multipart/form-data; boundary=x", "application/graphql", "application/json; charset=latin1", "nonsense"} {
			r := e.doCT(t, "POST", "/graphql", q, ct)
			assert.Equal(t, http.StatusUnsupportedMediaType, r.status, "%s: %s", ct, r.body)
			assert.Contains(t, r.body, "BAD_USER_INPUT", ct)
			assert.NotContains(t, r.body, `"data"`, ct)
			r = e.doCT(t, "POST", "/update", `{"name":"add_title","input":{"authorId":1,"title":"x","year":2000}}`, ct)
			assert.Equal(t, http.StatusUnsupportedMediaType, r.status, "/update %s", ct)
		}
		r = e.doCT(t, "POST", "/graphql", q, "")
		assert.Equal(t, http.StatusUnsupportedMediaType, r.status, "no content type")
		r = e.doCT(t, "POST", "/graphql", q, "application/json; charset=utf-8")
		assert.Equal(t, http.StatusOK, r.status, r.body)
	}

	const gqlJSON = "application/graphql-response+json"
	for _, tc := range []struct{ accept, want string }{
		{"", "application/json"},
		{"*/*", "application/json"},
		{"application/*", "application/json"},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"},
		{gqlJSON + ",application/json;q=0.9", gqlJSON},                                                          // Apollo Client
		{gqlJSON + ", application/graphql+json, application/json, text/event-stream, multipart/mixed", gqlJSON}, // urql
		{"application/json;q=0.5, " + gqlJSON, gqlJSON},
		{gqlJSON + ";q=0.1, application/json", "application/json"},
		{"application/json;q=0, */*", gqlJSON},
		{"APPLICATION/JSON", "application/json"},
		{"text/html", ""},
		{"application/json;q=0", ""},
	} {
		r := e.do(t, "POST", "/graphql", q, "Accept", tc.accept)
		if tc.want == "" {
			assert.Equal(t, http.StatusNotAcceptable, r.status, tc.accept)
			continue
		}
		assert.Equal(t, http.StatusOK, r.status, "%s: %s", tc.accept, r.body)
		assert.Equal(t, tc.want, r.header.Get("Content-Type"), tc.accept)
	}

	get := getQuery(`{ product(key: "soft/1") { key } }`, nil)
	a := e.do(t, "GET", get, "", "Accept", "application/json")
	b := e.do(t, "GET", get, "", "Accept", gqlJSON)
	require.Equal(t, a.body, b.body)
	assert.NotEqual(t, a.header.Get("ETag"), b.header.Get("ETag"), "two representations, two ETags")
	r := e.do(t, "GET", get, "", "Accept", gqlJSON, "If-None-Match", a.header.Get("ETag"))
	assert.Equal(t, http.StatusOK, r.status, "one type's ETag does not validate the other's")
}

// The request parameters the GraphQL over HTTP spec allows; anything else
// is 400 whatever Accept says. A document that does not parse, validate or
// coerce is 200 with application/json and 400 with
// application/graphql-response+json.
func TestGraphQLOverHTTPStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const gqlJSON = "application/graphql-response+json"
	for _, body := range []string{
		`{"query": {"obj":"ect"}}`, `{"query": 0}`, `{"query": false}`, `{"query": ["array"]}`,
		`{"query": "{ __typename }", "operationName": 0}`, `{"query": "{ __typename }", "operationName": {"a":1}}`,
		`{"query": "{ __typename }", "variables": "string"}`, `{"query": "{ __typename }", "variables": ["array"]}`,
		`{"query": "{ __typename }", "extensions": 0}`, `{"query": "{ __typename }", "extensions": "x"}`,
		`{"qeury": "{ __typename }"}`, `{}`, ``, `{ "not a JSON`,
	} {
		for _, accept := range []string{"application/json", gqlJSON} {
			r := e.doCT(t, "POST", "/graphql", body, "application/json", "Accept", accept)
			assert.Equal(t, http.StatusBadRequest, r.status, "%s (%s): %s", body, accept, r.body)
		}
	}
	for _, body := range []string{
		`{"query": "{ __typename }", "variables": null, "operationName": null, "extensions": null}`,
		`{"query": "query Q { __typename }", "operationName": "Q", "extensions": {"some": "value"}}`,
	} {
		r := e.do(t, "POST", "/graphql", body, "Accept", "application/json")
		assert.Equal(t, http.StatusOK, r.status, "%s: %s", body, r.body)
		assert.NotContains(t, r.body, "errors")
	}
	for _, doc := range []struct{ name, body string }{
		{"parse", gqlBody(`{`)},
		{"validation", gqlBody(`{ nope }`)},
		{"coercion", `{"query": "query Q($n: Int!) { topAuthors(n: $n) { authorId } }", "variables": {"n": "three"}}`},
	} {
		r := e.do(t, "POST", "/graphql", doc.body, "Accept", "application/json")
		assert.Equal(t, http.StatusOK, r.status, "%s: %s", doc.name, r.body)
		assert.NotContains(t, r.body, `"data"`, doc.name)
		r = e.do(t, "POST", "/graphql", doc.body, "Accept", gqlJSON)
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", doc.name, r.body)
		assert.NotContains(t, r.body, `"data"`, doc.name)
	}
	// GET takes variables and extensions as JSON in the URL.
	r := e.do(t, "GET", getQuery(`query T($name: String!) { __type(name: $name) { name } }`, map[string]any{"name": "Query"}), "")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `"name":"Query"`)
	r = e.do(t, "GET", "/graphql?query=%7B+__typename+%7D&variables=%5B1%5D", "")
	assert.Equal(t, http.StatusBadRequest, r.status, r.body)
}

// graphql-http's own audits of the GraphQL over HTTP specification
// (serverAudits, npm graphql-http) against the real gateway: every MUST and
// SHOULD passes, and so does every MAY (25 in graphql-http 1.23.1; each
// audit's outcome is in the test's output).
func TestGraphQLHTTPAudits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := browsertest.Run(t, t.Context(), "graphql-http-audit.mjs", e.url+"/graphql", "25")
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "MUST ") {
			t.Log(line)
		}
	}
}
