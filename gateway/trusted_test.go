package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/logtest"
	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/trusted"
)

const (
	trustedTitles = "query Titles($a: Int!) { titleList(authorId: $a) { id title } }"
	trustedAdd    = "mutation Add($a: Int!, $t: String!, $y: Int!) { addTitle(authorId: $a, title: $t, year: $y) { title { id title } } }"
	trustedLive   = "subscription Live($a: Int!) { titleList(authorId: $a) { id } }"
	adHoc         = "{ titleList(authorId: 3) { id } }"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// manifest writes an Apollo persisted query manifest of docs (name, body).
func manifest(t *testing.T, path string, docs ...[2]string) {
	t.Helper()
	var ops []map[string]string
	for _, d := range docs {
		ops = append(ops, map[string]string{"id": sha(d[1]), "name": d[0], "type": "query", "body": d[1]})
	}
	b, err := json.Marshal(map[string]any{"format": "apollo-persisted-query-manifest", "version": 1, "operations": ops})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".tmp", b, 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
}

// withTrusted is a gateway option: the trusted documents of path in mode.
func withTrusted(t *testing.T, path string, mode trusted.Mode, adminAdHoc bool, logs *logtest.Capture, reg *prometheus.Registry) func(*gateway.Options) {
	return func(o *gateway.Options) {
		st, err := trusted.Open(trusted.Options{Path: path, Mode: mode, AdminAdHoc: adminAdHoc, PollInterval: 10 * time.Millisecond,
			Logger: slog.New(logs), Registerer: reg})
		require.NoError(t, err)
		st.Start()
		t.Cleanup(st.Stop)
		o.Trusted = st
	}
}

func gqlVars(query string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

func errCode(t *testing.T, body string) string {
	t.Helper()
	g := decode[gqlReply](t, body)
	if len(g.Errors) == 0 {
		return ""
	}
	c, _ := g.Errors[0].Extensions["code"].(string)
	return c
}

func TestTrustedDocumentsEnforced(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	manifest(t, path, [2]string{"Titles", trustedTitles}, [2]string{"Add", trustedAdd}, [2]string{"Live", trustedLive})
	logs, reg := &logtest.Capture{}, prometheus.NewRegistry()
	e := newEnv(t, withTrusted(t, path, trusted.Enforce, false, logs, reg))

	// A trusted document: by its text, by its id (documentId), by Apollo's
	// persisted-query hash over GET with no registration first (a CDN can
	// cache it: Cache-Control and ETag).
	r := e.do(t, "POST", "/graphql", gqlVars(trustedTitles, map[string]any{"a": 3}))
	require.Equal(t, 200, r.status, r.body)
	assert.Empty(t, errCode(t, r.body), r.body)
	r = e.do(t, "POST", "/graphql", `{"documentId":"sha256:`+sha(trustedTitles)+`","variables":{"a":4}}`)
	require.Equal(t, 200, r.status, r.body)
	assert.Empty(t, errCode(t, r.body), r.body)
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + sha(trustedTitles) + `"}}`
	get := "/graphql?" + url.Values{"variables": {`{"a":5}`}, "extensions": {ext}}.Encode()
	r = e.do(t, "GET", get, "")
	require.Equal(t, 200, r.status, r.body)
	assert.Empty(t, errCode(t, r.body), r.body)
	assert.Contains(t, r.header.Get("Cache-Control"), "public")
	assert.NotEmpty(t, r.header.Get("ETag"))
	r = e.do(t, "GET", "/graphql?"+url.Values{"documentId": {sha(trustedTitles)}, "variables": {`{"a":5}`}}.Encode(), "")
	require.Equal(t, 200, r.status, r.body)
	assert.Empty(t, errCode(t, r.body))
	// The trusted mutation.
	r = e.do(t, "POST", "/graphql", gqlVars(trustedAdd, map[string]any{"a": 3, "t": "Trusted", "y": 2020}))
	require.Equal(t, 200, r.status, r.body)
	assert.Empty(t, errCode(t, r.body), r.body)

	// Anything else is refused: ad hoc text, an unknown hash, a text that
	// differs from a trusted one by a space; over GET too; 400 with
	// application/graphql-response+json.
	for _, body := range []string{
		gqlBody(adHoc),
		gqlBody(trustedTitles + " "),
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + sha(adHoc) + `"}}}`,
		`{"documentId":"nope"}`,
		gqlBody(`mutation { invalidate(key: "title_list/3") }`),
	} {
		r := e.do(t, "POST", "/graphql", body)
		assert.Equal(t, 200, r.status, body)
		assert.Equal(t, "PERSISTED_QUERY_NOT_ALLOWED", errCode(t, r.body), body)
		assert.NotContains(t, r.body, `"data"`)
		r = e.do(t, "POST", "/graphql", body, "Accept", "application/graphql-response+json")
		assert.Equal(t, 400, r.status, body)
	}
	r = e.do(t, "GET", getQuery(adHoc, nil), "")
	assert.Equal(t, "PERSISTED_QUERY_NOT_ALLOWED", errCode(t, r.body))
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))

	// Subscriptions: the trusted one runs, another is the protocol's error.
	c := dialWS(t, e.url, false, nil)
	c.subscribe("live", trustedLive, map[string]any{"a": 3})
	c.data("live")
	c.subscribe("adhoc", `subscription { titleList(authorId: 3) { id } }`, nil)
	code, _ := c.failure("adhoc")
	assert.Equal(t, "PERSISTED_QUERY_NOT_ALLOWED", code)

	assert.GreaterOrEqual(t, metrictest.Value(t, reg, "kck_trusted_documents_total", "refused"), 12.0)
	assert.GreaterOrEqual(t, metrictest.Value(t, reg, "kck_trusted_documents_total", "trusted"), 5.0)
}

// Log mode runs every document; those not trusted are counted, and logged
// once each.
func TestTrustedDocumentsLogMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	manifest(t, path, [2]string{"Titles", trustedTitles})
	logs, reg := &logtest.Capture{}, prometheus.NewRegistry()
	e := newEnv(t, withTrusted(t, path, trusted.Log, false, logs, reg), func(o *gateway.Options) { o.ResponseCacheBytes = -1 })
	for range 3 {
		r := e.do(t, "POST", "/graphql", gqlBody(adHoc))
		require.Equal(t, 200, r.status)
		assert.Empty(t, errCode(t, r.body), r.body)
	}
	assert.Equal(t, 3.0, metrictest.Value(t, reg, "kck_trusted_documents_total", "unknown"))
	assert.Equal(t, 1, logs.Count("document not in the trusted documents manifest"))
	assert.Equal(t, 1, logs.Count("sha256="+sha(adHoc)))
}

// With --trusted-documents-admin-adhoc, a caller with kck:admin may run
// other documents; their responses are never kept for anyone else.
func TestTrustedDocumentsAdminAdHoc(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	manifest(t, path, [2]string{"Titles", trustedTitles})
	logs, reg := &logtest.Capture{}, prometheus.NewRegistry()
	e := newAuthEnv(t, withTrusted(t, path, trusted.Enforce, true, logs, reg))
	admin, user := bearer(e.hs(t, "1", "kck:admin")), bearer(e.hs(t, "2", ""))
	for range 2 {
		r := e.do(t, "POST", "/graphql", gqlBody(adHoc), admin...)
		require.Equal(t, 200, r.status, r.body)
		assert.Empty(t, errCode(t, r.body), r.body)
	}
	for _, who := range [][]string{user, nil} {
		r := e.do(t, "POST", "/graphql", gqlBody(adHoc), who...)
		assert.Equal(t, "PERSISTED_QUERY_NOT_ALLOWED", errCode(t, r.body), "not served from the admin's response: %s", r.body)
	}
	assert.Equal(t, 2.0, metrictest.Value(t, reg, "kck_trusted_documents_total", "unknown"))
}

// The manifest is reloaded when its file changes, with no request dropped
// meanwhile; a document taken out of it is refused at once, even where its
// response was kept.
func TestTrustedDocumentsReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	manifest(t, path, [2]string{"Titles", trustedTitles})
	logs, reg := &logtest.Capture{}, prometheus.NewRegistry()
	e := newEnv(t, withTrusted(t, path, trusted.Enforce, false, logs, reg))
	titles := gqlVars(trustedTitles, map[string]any{"a": 3})
	require.Empty(t, errCode(t, e.do(t, "POST", "/graphql", titles).body))
	require.Empty(t, errCode(t, e.do(t, "POST", "/graphql", titles).body), "a response-cache hit")
	require.Equal(t, "PERSISTED_QUERY_NOT_ALLOWED", errCode(t, e.do(t, "POST", "/graphql", gqlBody(adHoc)).body))

	// Requests keep flowing while the manifest is rewritten several times.
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Post(e.url+"/graphql", "application/json", bytesReader(titles))
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
			if resp != nil {
				var g gqlReply
				if json.NewDecoder(resp.Body).Decode(&g) != nil || len(g.Errors) > 0 {
					failed.Add(1)
				}
				resp.Body.Close()
			}
		}
	}()
	for i := range 3 {
		manifest(t, path, [2]string{"Titles", trustedTitles}, [2]string{"AdHoc", adHoc})
		require.Eventually(t, func() bool { return errCode(t, e.do(t, "POST", "/graphql", gqlBody(adHoc)).body) == "" }, time.Minute, 5*time.Millisecond, "round %d", i)
		manifest(t, path, [2]string{"Titles", trustedTitles})
		require.Eventually(t, func() bool {
			return errCode(t, e.do(t, "POST", "/graphql", gqlBody(adHoc)).body) == "PERSISTED_QUERY_NOT_ALLOWED"
		}, time.Minute, 5*time.Millisecond, "round %d: taken out, refused although its response was kept", i)
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load(), "no request failed during the reloads")
	assert.Equal(t, 6.0, metrictest.Value(t, reg, "kck_trusted_documents_reloads_total", "ok"))

	// A manifest that does not validate keeps the one in force.
	manifest(t, path, [2]string{"Broken", "query Broken { nope }"})
	require.Eventually(t, func() bool { return metrictest.Value(t, reg, "kck_trusted_documents_reloads_total", "failed") >= 1 }, time.Minute, 5*time.Millisecond)
	assert.Empty(t, errCode(t, e.do(t, "POST", "/graphql", titles).body))
}

// A manifest whose document does not validate against the schema stops the
// gateway from starting, naming the document.
func TestTrustedDocumentsValidatedAtStart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	manifest(t, path, [2]string{"Titles", trustedTitles}, [2]string{"Stale", "query Stale { titleList(authorId: 1) { isbn } }"})
	st, err := trusted.Open(trusted.Options{Path: path, Mode: trusted.Enforce})
	require.NoError(t, err)
	_, err = gateway.New(gateway.Options{Cache: newEnv(t).cache, Trusted: st, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `trusted document "Stale" (id `)
	assert.Contains(t, err.Error(), `isbn`)
}
