package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/metrictest"
)

// rawClient sends Accept-Encoding as given and leaves the body as sent
// (Go's default transport would add gzip and decompress behind our back).
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

type wire struct {
	status int
	header http.Header
	body   []byte // as sent
}

// send makes one request; acceptEncoding nil sends no Accept-Encoding.
func (e *env) send(t *testing.T, method, path, body string, acceptEncoding []string, hdr ...string) wire {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if acceptEncoding != nil {
		req.Header["Accept-Encoding"] = acceptEncoding
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rawClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return wire{resp.StatusCode, resp.Header, b}
}

// decoded is the body a wire response carries, decompressed by its
// Content-Encoding.
func decoded(t *testing.T, w wire) string {
	t.Helper()
	switch ce := w.header.Get("Content-Encoding"); ce {
	case "":
		return string(w.body)
	case "gzip":
		r, err := gzip.NewReader(bytes.NewReader(w.body))
		require.NoError(t, err)
		out, err := io.ReadAll(r)
		require.NoError(t, err)
		return string(out)
	case "zstd":
		r, err := zstd.NewReader(bytes.NewReader(w.body))
		require.NoError(t, err)
		defer r.Close()
		out, err := io.ReadAll(r)
		require.NoError(t, err)
		return string(out)
	default:
		t.Fatalf("Content-Encoding %q", ce)
		return ""
	}
}

func compressions(t *testing.T, e *env, coding string) float64 {
	t.Helper()
	return metrictest.Value(t, e.metrics, "kck_graphql_response_compressions_total", coding)
}

// bigQuery reads n title lists: a response of about n*750 bytes.
func bigQuery(n int) string {
	return "{ " + aliased(n, `titleList(authorId: 7) { id title year }`) + "}"
}

// Every negotiation case, over POST and GET: the coding chosen, its
// headers, and bytes that decompress to the identity body.
func TestCompressionNegotiation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := bigQuery(4)
	post := gqlBody(q)
	get := getQuery(q, nil)
	plainPost := e.send(t, "POST", "/graphql", post, nil)
	require.Equal(t, 200, plainPost.status, string(plainPost.body))
	require.Greater(t, len(plainPost.body), 2000)
	plainGet := e.send(t, "GET", get, "", nil)
	require.Equal(t, 200, plainGet.status)
	identityTag := plainGet.header.Get("ETag")
	for _, tc := range []struct {
		accept []string
		want   string
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"gzip"}, "gzip"},
		{[]string{"GZIP"}, "gzip"},
		{[]string{"x-gzip"}, "gzip"},
		{[]string{"zstd"}, "zstd"},
		{[]string{"gzip, deflate, br, zstd"}, "zstd"},
		{[]string{"gzip;q=0, zstd"}, "zstd"},
		{[]string{"zstd;q=0.5, gzip"}, "gzip"},
		{[]string{"gzip;q=0"}, ""},
		{[]string{"*"}, "zstd"},
		{[]string{"*;q=0.5, gzip;q=0.6"}, "gzip"},
		{[]string{"gzip;q=0, zstd;q=0, *"}, ""},
		{[]string{"identity"}, ""},
		{[]string{"identity, gzip;q=0.5"}, ""},
		{[]string{"identity;q=0.5, gzip"}, "gzip"},
		{[]string{"identity;q=0, *;q=0"}, ""},
		{[]string{"br"}, ""},
		{[]string{"gzip;q=abc"}, ""},
		{[]string{"br", "gzip"}, "gzip"},
	} {
		for _, method := range []string{"POST", "GET"} {
			var w wire
			plain := plainPost
			if method == "POST" {
				w = e.send(t, method, "/graphql", post, tc.accept)
			} else {
				w, plain = e.send(t, method, get, "", tc.accept), plainGet
			}
			require.Equal(t, 200, w.status, "%s %q", method, tc.accept)
			assert.Equal(t, tc.want, w.header.Get("Content-Encoding"), "%s %q", method, tc.accept)
			assert.Contains(t, w.header.Values("Vary"), "Accept-Encoding", "%s %q", method, tc.accept)
			assert.Equal(t, strconv.Itoa(len(w.body)), w.header.Get("Content-Length"))
			assert.Equal(t, string(plain.body), decoded(t, w), "%s %q: the same body", method, tc.accept)
			if tc.want != "" {
				assert.Less(t, len(w.body)*3, len(plain.body), "%s %q: compressed", method, tc.accept)
			}
			if method == "GET" {
				tag := w.header.Get("ETag")
				if tc.want == "" {
					assert.Equal(t, identityTag, tag)
				} else {
					assert.Equal(t, strings.TrimSuffix(identityTag, `"`)+"-"+tc.want+`"`, tag, "an ETag per coding")
				}
			}
		}
	}
	// Two kept responses (POST, GET), each compressed once per coding.
	assert.Equal(t, 2.0, compressions(t, e, "gzip"))
	assert.Equal(t, 2.0, compressions(t, e, "zstd"))
}

// A coding is compressed once per version of a response, however many
// hits ask for it at once; a new version is compressed again, once.
func TestCompressedOncePerVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := gqlBody("{ " + aliased(3, `titleList(authorId: 5) { id title year }`) + " product(key: \"counted/1\") { value } }")
	first := e.send(t, "POST", "/graphql", q, []string{"gzip"})
	require.Equal(t, 200, first.status)
	assert.Equal(t, "gzip", first.header.Get("Content-Encoding"), "the miss is served compressed too")
	assert.Equal(t, 1.0, compressions(t, e, "gzip"))

	var wg sync.WaitGroup
	bodies := make([][]byte, 32)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.send(t, "POST", "/graphql", q, []string{"gzip, zstd;q=0.1"})
			bodies[i] = w.body
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		assert.Equal(t, first.body, b, "stored bytes")
	}
	assert.Equal(t, 1.0, compressions(t, e, "gzip"))
	assert.Equal(t, 0.0, compressions(t, e, "zstd"), "no one asked for zstd")
	hits := metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "hit")
	assert.Equal(t, 32.0, hits)

	// A new version of a product in it: a new response, compressed once.
	_, err := e.cache.Refresh(context.Background(), "counted/1")
	require.NoError(t, err)
	for range 5 {
		w := e.send(t, "POST", "/graphql", q, []string{"gzip"})
		assert.Contains(t, decoded(t, w), `"value":2001`)
	}
	assert.Equal(t, 2.0, compressions(t, e, "gzip"))
}

// GET's ETag names the representation: If-None-Match answers 304 only for
// the coding it was sent with. HEAD gives GET's headers without the body.
func TestCompressionETagsAndHEAD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	get := getQuery(bigQuery(3), nil)
	gz := e.send(t, "GET", get, "", []string{"gzip"})
	require.Equal(t, 200, gz.status)
	require.Equal(t, "gzip", gz.header.Get("Content-Encoding"))
	plain := e.send(t, "GET", get, "", nil)
	gzTag, plainTag := gz.header.Get("ETag"), plain.header.Get("ETag")
	require.NotEqual(t, gzTag, plainTag)

	w := e.send(t, "GET", get, "", []string{"gzip"}, "If-None-Match", gzTag)
	assert.Equal(t, http.StatusNotModified, w.status)
	assert.Empty(t, w.body)
	assert.Equal(t, gzTag, w.header.Get("ETag"))
	assert.Contains(t, w.header.Values("Vary"), "Accept-Encoding")
	w = e.send(t, "GET", get, "", nil, "If-None-Match", gzTag)
	assert.Equal(t, 200, w.status, "the identity representation is another")
	assert.Equal(t, plain.body, w.body)
	w = e.send(t, "GET", get, "", []string{"gzip"}, "If-None-Match", plainTag)
	assert.Equal(t, 200, w.status)
	assert.Equal(t, gz.body, w.body)
	w = e.send(t, "GET", get, "", []string{"zstd"}, "If-None-Match", `"x", `+gzTag)
	assert.Equal(t, 200, w.status)
	assert.Equal(t, "zstd", w.header.Get("Content-Encoding"))

	for _, accept := range [][]string{{"gzip"}, nil, {"zstd"}} {
		g := e.send(t, "GET", get, "", accept)
		h := e.send(t, "HEAD", get, "", accept)
		require.Equal(t, 200, h.status, "%q", accept)
		assert.Empty(t, h.body)
		for _, name := range []string{"Content-Encoding", "Content-Length", "Content-Type", "ETag", "Cache-Control"} {
			assert.Equal(t, g.header.Get(name), h.header.Get(name), "%s for %q", name, accept)
		}
		assert.Equal(t, g.header.Values("Vary"), h.header.Values("Vary"))
	}
	// A HEAD that misses executes as GET and keeps the response for GET.
	fresh := getQuery(bigQuery(2), nil)
	h := e.send(t, "HEAD", fresh, "", []string{"gzip"})
	require.Equal(t, 200, h.status)
	assert.Equal(t, "gzip", h.header.Get("Content-Encoding"))
	stores := metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "store")
	g := e.send(t, "GET", fresh, "", []string{"gzip"})
	assert.Equal(t, h.header.Get("ETag"), g.header.Get("ETag"))
	assert.Equal(t, stores, metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "store"), "GET hit HEAD's entry")
	// HEAD of a mutation is refused as GET's is.
	assert.Equal(t, http.StatusMethodNotAllowed, e.send(t, "HEAD", getQuery(`mutation { invalidate(key: "counted/1") }`, nil), "", nil).status)
}

// Short bodies, responses that are not kept, and a gateway with
// compression off go out in identity coding; a lower threshold compresses
// short ones too.
func TestCompressionLeavesSomeResponsesAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	small := gqlBody(`{ author(authorId: 3) { id name } }`)
	for range 2 {
		w := e.send(t, "POST", "/graphql", small, []string{"gzip"})
		require.Equal(t, 200, w.status)
		assert.Empty(t, w.header.Get("Content-Encoding"), "under 512 bytes")
		assert.Contains(t, w.header.Values("Vary"), "Accept-Encoding")
	}
	failing := gqlBody(`{ a: product(key: "failing/1") { value } ` + aliased(3, `titleList(authorId: 7) { id title year }`) + `}`)
	w := e.send(t, "POST", "/graphql", failing, []string{"gzip"})
	require.Equal(t, 200, w.status)
	assert.Contains(t, string(w.body), `"errors"`)
	assert.Greater(t, len(w.body), 2000)
	assert.Empty(t, w.header.Get("Content-Encoding"), "not kept: not compressed (that would be per request)")
	assert.Equal(t, 0.0, compressions(t, e, "gzip"))

	all := newEnv(t, func(o *gateway.Options) { o.CompressMinBytes = -1 })
	w = all.send(t, "POST", "/graphql", small, []string{"gzip"})
	assert.Equal(t, "gzip", w.header.Get("Content-Encoding"))
	a, ok := all.ds.Author(3)
	require.True(t, ok)
	assert.Contains(t, decoded(t, w), `{"data":{"author":{"id":3,"name":"`+a.Name+`"}}`)

	off := newEnv(t, func(o *gateway.Options) { o.DisableCompression = true })
	for range 2 {
		w = off.send(t, "POST", "/graphql", gqlBody(bigQuery(3)), []string{"gzip, zstd"})
		assert.Empty(t, w.header.Get("Content-Encoding"))
		assert.NotContains(t, w.header.Values("Vary"), "Accept-Encoding")
	}
	w = off.send(t, "GET", getQuery(bigQuery(3), nil), "", []string{"gzip"})
	assert.Empty(t, w.header.Get("Content-Encoding"))
	assert.Equal(t, []string{"Accept"}, w.header.Values("Vary"))
	assert.Equal(t, 0.0, compressions(t, off, "gzip"))
}

// With auth on, a public response is compressed once for every caller; a
// per-caller one has its own entry, compressed on its own, never served to
// another caller.
func TestCompressionWithAuth(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	t5, t6 := e.hs(t, "5", "stats:read"), e.hs(t, "6", "stats:read")
	public := gqlBody(bigQuery(3))
	first := e.send(t, "POST", "/graphql", public, []string{"gzip"}, bearer(t5)...)
	require.Equal(t, 200, first.status)
	require.Equal(t, "gzip", first.header.Get("Content-Encoding"))
	for _, hdr := range [][]string{bearer(t6), nil} {
		w := e.send(t, "POST", "/graphql", public, []string{"gzip"}, hdr...)
		assert.Equal(t, first.body, w.body)
	}
	assert.Equal(t, 1.0, compressions(t, e.env, "gzip"))

	mixed := gqlBody(`{ ` + aliased(3, `titleList(authorId: 5) { id title year }`) + ` authorStats(authorId: 5) { authorId titleCount } }`)
	m5 := e.send(t, "POST", "/graphql", mixed, []string{"gzip"}, bearer(t5)...)
	require.Equal(t, "gzip", m5.header.Get("Content-Encoding"))
	assert.NotContains(t, decoded(t, m5), `"errors"`)
	assert.Equal(t, m5.body, e.send(t, "POST", "/graphql", mixed, []string{"gzip"}, bearer(t5)...).body)
	assert.Equal(t, 2.0, compressions(t, e.env, "gzip"))
	m6 := e.send(t, "POST", "/graphql", mixed, []string{"gzip"}, bearer(t6)...)
	assert.Contains(t, decoded(t, m6), "FORBIDDEN", "user 6 is not served user 5's bytes")
	anon := e.send(t, "POST", "/graphql", mixed, []string{"gzip"})
	assert.Contains(t, decoded(t, anon), "UNAUTHENTICATED")
}

// A subscription's upgrade is untouched by compression, whatever
// Accept-Encoding the client sends.
func TestCompressionLeavesWebSocketsAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, err := tryDialWS(t, e.url, false, nil, http.Header{"Accept-Encoding": {"gzip, zstd"}})
	require.NoError(t, err)
	c.subscribe("1", `subscription { product(key: "title_list/7") { key version } }`, nil)
	d := c.data("1")
	assert.Contains(t, string(d["product"]), `"title_list/7"`)
	assert.Equal(t, 0.0, compressions(t, e, "gzip")+compressions(t, e, "zstd"))
}

// A kept response is replayed only until the first of its products turns
// stale, even while no product changes (the hit skips its per-product
// lookups then, not the expiry).
func TestResponseCacheHitsEndAtExpiry(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(e *env, o *cache.Options) { o.Clock = e.clock })
	q := gqlBody(`{ a: product(key: "soft/1") { version } b: product(key: "counted/1") { version } }`)
	outcome := func(o string) float64 {
		return metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", o)
	}
	first := e.send(t, "POST", "/graphql", q, nil)
	for range 3 {
		assert.Equal(t, first.body, e.send(t, "POST", "/graphql", q, nil).body)
	}
	require.Equal(t, 3.0, outcome("hit"))
	e.clock.Advance(59 * time.Second)
	e.send(t, "POST", "/graphql", q, nil)
	require.Equal(t, 4.0, outcome("hit"))
	e.clock.Advance(2 * time.Second) // soft/1 is stale now
	e.send(t, "POST", "/graphql", q, nil)
	assert.Equal(t, 4.0, outcome("hit"), "executed again")
	assert.Equal(t, 2.0, outcome("miss"))
}

// A body past MaxBodyBytes is 413 and the connection is closed after it,
// as http.MaxBytesReader has the server do; one of exactly MaxBodyBytes is
// read.
func TestBodyLimitClosesTheConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // MaxBodyBytes 64 KiB
	post := func(body string) (int, bool) {
		resp, err := rawClient.Post(e.url+"/graphql", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Close // Close: the server said Connection: close
	}
	for _, n := range []int{64<<10 + 1, 64<<10 + 4096} {
		status, closed := post(strings.Repeat("a", n))
		assert.Equal(t, http.StatusRequestEntityTooLarge, status, n)
		assert.True(t, closed, n)
	}
	q := gqlBody(`{ author(authorId: 3) { id } }`)
	exact := q[:len(q)-1] + strings.Repeat(" ", 64<<10-len(q)) + "}"
	require.Len(t, exact, 64<<10)
	status, closed := post(exact)
	assert.Equal(t, 200, status)
	assert.False(t, closed)
}
