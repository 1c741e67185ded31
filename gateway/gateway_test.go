package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/logtest"
	"github.com/kck-go/kck/primers"
)

type env struct {
	url      string
	srv      *gateway.Server
	store    cache.Store // the embedded store (limits_test weighs its file); memory for the auth tests
	storeDir string
	cache    *cache.Cache
	ds       *demo.Dataset
	runs     atomic.Int64 // runs of "counted"
	sparse   atomic.Int64 // runs of "sparse", which has no data
	logs     *logtest.Capture
	clock    *cachetest.Clock
	notOK    atomic.Bool // fails the "extra" ready check
	metrics  *prometheus.Registry
}

// newEnv starts the real gateway on a loopback port over a real cache and
// embedded store, with the demo products and a few test products.
func newEnv(t testing.TB, mod ...func(*gateway.Options)) *env {
	t.Helper()
	return newEnvWith(t, nil, mod...)
}

// newEnvWith is newEnv with the cache's options changed by cmod too.
func newEnvWith(t testing.TB, cmod func(*env, *cache.Options), mod ...func(*gateway.Options)) *env {
	t.Helper()
	e := &env{ds: demo.NewDataset(), metrics: prometheus.NewRegistry(), logs: &logtest.Capture{}, clock: newFakeClock()}
	var err error
	e.storeDir = t.TempDir()
	e.store, err = bolt.Open(e.storeDir, bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.store.Close() })
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, e.ds))
	n := []primers.Param{{Name: "n", Kind: primers.Int}}
	reg.MustRegister(
		primers.Product{Name: "failing", Params: n, Primer: primers.Func1(func(context.Context, int64) (int64, error) {
			return 0, errors.New("upstream down: secret dsn postgres://u:p@db")
		})},
		primers.Product{Name: "counted", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			return n + 1000*e.runs.Add(1), nil
		})},
		// soft turns stale after a minute (for HTTP caching headers).
		primers.Product{Name: "soft", Params: n, SoftTTL: time.Minute, TTL: time.Hour,
			Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { return n, nil })},
		primers.Product{Name: "sparse", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			e.sparse.Add(1)
			return 0, fmt.Errorf("%w: nothing for %d", primers.ErrNoData, n)
		})},
	)
	logger := slog.New(e.logs)
	co := cache.Options{Registry: reg, Store: e.store, Registerer: e.metrics, Logger: logger}
	if cmod != nil {
		cmod(e, &co)
	}
	e.cache, err = cache.New(co)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	o := gateway.Options{
		Cache: e.cache, Logger: logger,
		Registerer: e.metrics, Gatherer: e.metrics, MaxBodyBytes: 64 << 10,
		ReadyChecks: map[string]func(context.Context) error{"extra": func(context.Context) error {
			if e.notOK.Load() {
				return errors.New("extra check failed")
			}
			return nil
		}},
	}
	for _, m := range mod {
		m(&o)
	}
	e.srv, err = gateway.New(o)
	require.NoError(t, err)
	hs := httptest.NewServer(e.srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// doCT is do with the request's Content-Type ct (none when empty).
func (e *env) doCT(t *testing.T, method, path, body, ct string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	return v
}

type product[T any] struct {
	Key        string `json:"key"`
	Version    string `json:"version"`
	ComputedAt string `json:"computedAt"`
	Stale      bool   `json:"stale"`
	Value      T      `json:"value"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestGraphQLOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type titles struct {
		Data struct{ TitleList []demo.Title } `json:"data"`
	}
	want := e.ds.TitlesBy(42)

	r := e.do(t, "POST", "/graphql", `{"query":"{ titleList(authorId: 42) { id authorId title year } }"}`)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, want, decode[titles](t, r.body).Data.TitleList)

	q := url.QueryEscape(`{ titleList(authorId: 42) { id authorId title year } }`)
	r = e.do(t, "GET", "/graphql?query="+q, "")
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, want, decode[titles](t, r.body).Data.TitleList)

	// A GET may not run a mutation.
	r = e.do(t, "GET", "/graphql?query="+url.QueryEscape(`mutation { invalidate(key: "author/1") }`), "")
	assert.GreaterOrEqual(t, r.status, 400)
	assert.Less(t, r.status, 500)
}

func TestPlayground(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "GET", "/", "")
	require.Equal(t, 200, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "text/html")
	assert.Contains(t, r.body, "/graphql")
	assert.Equal(t, 404, e.do(t, "GET", "/nope", "").status)
}

func TestFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "GET", "/fetch?key=title_list/7", "")
	require.Equal(t, 200, r.status, r.body)
	p := decode[product[[]demo.Title]](t, r.body)
	assert.Equal(t, "title_list/7", p.Key)
	assert.Equal(t, e.ds.TitlesBy(7), p.Value)
	assert.NotEmpty(t, p.Version)
	assert.NotEmpty(t, p.ComputedAt)
	assert.False(t, p.Stale)
	assert.Equal(t, `"`+p.Version+`"`, r.header.Get("ETag"))

	// The path form, and a conditional GET.
	r2 := e.do(t, "GET", "/fetch/title_list/7", "", "If-None-Match", r.header.Get("ETag"))
	assert.Equal(t, http.StatusNotModified, r2.status)
	assert.Empty(t, r2.body)
	r3 := e.do(t, "GET", "/fetch/title_list/7", "", "If-None-Match", `"1"`)
	assert.Equal(t, 200, r3.status)

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/fetch?key=title_list/x", 400, "BAD_USER_INPUT"},
		{"/fetch?key=title_list", 400, "BAD_USER_INPUT"},
		{"/fetch", 400, "BAD_USER_INPUT"},
		{"/fetch?key=nope/1", 404, "NOT_FOUND"},
		{"/fetch?key=author/99999", 404, "NOT_FOUND"},
		{"/fetch?key=failing/1", 502, "PRIMER_FAILED"},
	} {
		r := e.do(t, "GET", tc.path, "")
		assert.Equal(t, tc.status, r.status, "%s: %s", tc.path, r.body)
		eb := decode[errorBody](t, r.body)
		assert.Equal(t, tc.code, eb.Error.Code, tc.path)
	}
	// Details of a primer failure name the product; they do not leak here
	// beyond the primer's own message, and never as a stack.
	r = e.do(t, "GET", "/fetch?key=failing/1", "")
	assert.Contains(t, r.body, "failing")
	assert.NotContains(t, r.body, "goroutine")
}

func TestFetchSeveralKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "GET", "/fetch?key=author/3&key=nope/1&key=author/x&key=failing/2&key=author/4", "")
	require.Equal(t, 200, r.status, r.body)
	got := decode[struct {
		Products []product[demo.Author] `json:"products"`
	}](t, r.body).Products
	require.Len(t, got, 5)
	a3, _ := e.ds.Author(3)
	a4, _ := e.ds.Author(4)
	assert.Equal(t, a3, got[0].Value)
	assert.Nil(t, got[0].Error)
	assert.Equal(t, "NOT_FOUND", got[1].Error.Code)
	assert.Equal(t, "BAD_USER_INPUT", got[2].Error.Code)
	assert.Equal(t, "author/x", got[2].Key)
	assert.Equal(t, "PRIMER_FAILED", got[3].Error.Code)
	assert.Equal(t, a4, got[4].Value)

	many := strings.Repeat("key=author/1&", 101)
	assert.Equal(t, 400, e.do(t, "GET", "/fetch?"+many, "").status)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "POST", "/update", `{"name":"add_title","input":{"authorId":11,"title":"Posted","year":2025}}`)
	require.Equal(t, 200, r.status, r.body)
	out := decode[struct {
		Name     string
		Result   demo.Title
		Products []product[json.RawMessage]
	}](t, r.body)
	assert.Equal(t, "Posted", out.Result.Title)
	require.Len(t, out.Products, 2)
	list := decode[[]demo.Title](t, string(out.Products[0].Value))
	assert.Equal(t, out.Result, list[len(list)-1])

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`not json`, 400},
		{`{"name":"add_title"}`, 400},
		{`{"input":{}}`, 400},
		{`{"name":"add_title","input":{},"x":1}`, 400},
		{`{"name":"add_title","input":{"authorId":1}} {}`, 400},
		{`{"name":"add_title","input":{"authorId":1,"title":"x","year":1}}`, 400},
		{`{"name":"nope","input":{}}`, 404},
		{`{"name":"add_title","input":{"authorId":1,"title":"` + strings.Repeat("x", 70<<10) + `","year":2000}}`, 413},
	} {
		r := e.do(t, "POST", "/update", tc.body)
		assert.Equal(t, tc.status, r.status, "%.80s: %s", tc.body, r.body)
	}
	// What a page on another site can make a browser send without asking
	// (no CORS preflight): refused, so nothing acts through a visitor.
	good := `{"name":"add_title","input":{"authorId":11,"title":"Cross-site","year":2025}}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		req, err := http.NewRequest("POST", e.url+"/update", strings.NewReader(good))
		require.NoError(t, err)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "Content-Type %q", ct)
	}
	assert.Equal(t, len(demo.NewDataset().Titles())+1, len(e.ds.Titles()), "only the good update wrote")
	assert.Equal(t, http.StatusMethodNotAllowed, e.do(t, "GET", "/update", "").status)
	assert.Equal(t, http.StatusMethodNotAllowed, e.do(t, "POST", "/fetch?key=author/1", "x").status)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	assert.Equal(t, 200, e.do(t, "GET", "/healthz", "").status)
	assert.Equal(t, 200, e.do(t, "GET", "/readyz", "").status)

	e.notOK.Store(true)
	r := e.do(t, "GET", "/readyz", "")
	assert.Equal(t, 503, r.status)
	assert.Contains(t, r.body, "extra check failed")
	e.notOK.Store(false)

	e.do(t, "GET", "/fetch?key=author/1", "")
	m := e.do(t, "GET", "/metrics", "")
	require.Equal(t, 200, m.status)
	assert.Contains(t, m.body, `kck_cache_reads_total{outcome="miss"} 1`)
	assert.Contains(t, m.body, `kck_primer_runs_total{product="author"} 1`)

	require.NoError(t, e.store.Close())
	r = e.do(t, "GET", "/readyz", "")
	assert.Equal(t, 503, r.status)
	assert.Contains(t, r.body, "store")
	assert.Equal(t, 200, e.do(t, "GET", "/healthz", "").status, "alive, just not ready")
}

// A probe polling /readyz while a check fails logs the failure once, and
// the recovery once, not every poll.
func TestReadinessLogsChangesOnly(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer // written by the handler, read here after each request
	e := newEnv(t, func(o *gateway.Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	e.notOK.Store(true)
	for range 5 {
		assert.Equal(t, 503, e.do(t, "GET", "/readyz", "").status)
	}
	e.notOK.Store(false)
	for range 3 {
		assert.Equal(t, 200, e.do(t, "GET", "/readyz", "").status)
	}
	e.notOK.Store(true)
	assert.Equal(t, 503, e.do(t, "GET", "/readyz", "").status)
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, `msg="not ready" check=extra`), out)
	assert.Equal(t, 1, strings.Count(out, `msg="ready again" check=extra`), out)
}

// The response cache replays a query's bytes only while every product in it
// keeps its version: a refresh, update or invalidation is seen at once.
func TestResponseCacheNeverServesOldBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := `{"query":"{ product(key: \"counted/1\") { value version } }"}`
	value := func() float64 {
		r := e.do(t, "POST", "/graphql", q)
		require.Equal(t, 200, r.status, r.body)
		return decode[struct {
			Data struct{ Product struct{ Value float64 } }
		}](t, r.body).Data.Product.Value
	}
	assert.Equal(t, 1001.0, value())
	assert.Equal(t, 1001.0, value())
	m := e.do(t, "GET", "/metrics", "").body
	assert.Contains(t, m, `kck_graphql_response_cache_total{outcome="hit"} 1`)

	_, err := e.cache.Refresh(context.Background(), "counted/1")
	require.NoError(t, err)
	assert.Equal(t, 2001.0, value(), "after refresh")

	require.NoError(t, e.cache.Invalidate(context.Background(), "counted/1"))
	assert.Equal(t, 3001.0, value(), "after invalidate")

	r := e.do(t, "POST", "/graphql", `{"query":"mutation { refresh(key: \"counted/1\") { value } }"}`)
	require.Equal(t, 200, r.status)
	assert.Equal(t, 4001.0, value(), "after a refresh mutation")

	// Through an updater: the title list a client saw gets the new title.
	lq := `{"query":"{ titleList(authorId: 5) { title } }"}`
	before := e.do(t, "POST", "/graphql", lq).body
	assert.Equal(t, before, e.do(t, "POST", "/graphql", lq).body)
	e.do(t, "POST", "/update", `{"name":"add_title","input":{"authorId":5,"title":"Fresh","year":2025}}`)
	after := e.do(t, "POST", "/graphql", lq).body
	assert.Contains(t, after, "Fresh")

	// Responses with errors are not kept.
	bad := `{"query":"{ product(key: \"failing/1\") { value } }"}`
	e.do(t, "POST", "/graphql", bad)
	e.do(t, "POST", "/graphql", bad)
	assert.Contains(t, e.do(t, "GET", "/metrics", "").body, `kck_primer_runs_total{product="failing"} 2`)
}

func TestGarbageIsAClientError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	deep := strings.Repeat("{ product(key: \\\"author/1\\\") ", 1) + strings.Repeat("{ a ", 500) + strings.Repeat("} ", 501)
	for _, body := range []string{
		"", "\x00\x01\x02", "{", `{"query": 1}`, `{"query":"{"}`, `{"query":"{ nope }"}`,
		`{"query":"{ author(authorId: 1) { id } }","variables":"x"}`,
		`{"query":"query($id: Int!) { author(authorId: $id) { id } }","variables":{"id":"seven"}}`,
		`{"query":"query($id: Int!) { author(authorId: $id) { id } }","variables":{"id":99999999999999999999}}`,
		"{\"query\":\"{ author(authorId: 1) { \xff\xfe } }\"}",
		`{"query":"` + deep + `"}`,
		`{"query":"{ ` + strings.Repeat("a: author(authorId: 1) { id } ", 3) + `}"}`,
		`{"query":"` + strings.Repeat("x", 70<<10) + `"}`,
	} {
		r := e.do(t, "POST", "/graphql", body)
		assert.True(t, r.status >= 400 && r.status < 500 || r.status == 200 && strings.Contains(r.body, `"errors"`) || strings.HasPrefix(body, `{"query":"{ a: author`),
			"%.60q gave %d %.200s", body, r.status, r.body)
	}
	for _, path := range []string{"/fetch?key=%ff", "/fetch/%2F%2F", "/fetch?key=" + strings.Repeat("a/", 5000)} {
		r := e.do(t, "GET", path, "")
		assert.True(t, r.status >= 400 && r.status < 500, "%.60s gave %d", path, r.status)
	}
	// Still serving.
	assert.Equal(t, 200, e.do(t, "GET", "/fetch?key=author/1", "").status)
}
