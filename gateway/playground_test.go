package gateway_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/browsertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The playground page names only this gateway's own assets, each with an
// integrity hash that matches the bytes the gateway serves: it works
// air-gapped, and a browser would refuse a changed file.
func TestPlaygroundLoadsNothingFromOutside(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	page := e.do(t, "GET", "/", "")
	require.Equal(t, 200, page.status)
	require.Contains(t, page.body, "GraphiQL")
	assert.NotContains(t, page.body, "https://")
	assert.NotContains(t, page.body, "http://")
	refs := regexp.MustCompile(`(?s)(?:src|href)="([^"]+)"\s+integrity="([^"]+)"`).FindAllStringSubmatch(page.body, -1)
	require.Len(t, refs, 4, "react, react-dom, graphiql's css and js")
	for _, ref := range refs {
		url, sri := ref[1], html.UnescapeString(ref[2])
		require.True(t, strings.HasPrefix(url, "/playground/"), url)
		asset := e.do(t, "GET", url, "")
		require.Equal(t, 200, asset.status, url)
		sum := sha256.Sum256([]byte(asset.body))
		assert.Equal(t, "sha256-"+base64.StdEncoding.EncodeToString(sum[:]), sri, url)
	}
	assert.Equal(t, 404, e.do(t, "GET", "/playground/", "").status, "no listing")
	assert.Equal(t, 404, e.do(t, "GET", "/playground/nosuch.js", "").status)
}

// In a real browser (headless chromium), the playground renders, loads
// nothing from outside, logs no console error, and its origin can query.
func TestPlaygroundInChromium(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	browsertest.Run(t, t.Context(), "playground.mjs", e.url)
}

// In chromium, a subscription runs from the playground with the headers
// pane's token (connection_init's payload), and the result pane shows the
// version an update pushed.
func TestPlaygroundSubscriptionInChromium(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	shot := filepath.Join(os.TempDir(), "kck-artefacts", "playground-subscription.png")
	require.NoError(t, os.MkdirAll(filepath.Dir(shot), 0o755))
	browsertest.Run(t, t.Context(), "playground-subscription.mjs", e.url, e.hs(t, "5", "stats:read titles:write"), shot)
	t.Logf("screenshot: %s", shot)
}

// The playground opens with a query that runs (with auth on too: the
// demo's public products), and names a favicon the gateway serves.
func TestPlaygroundExampleQueryAndFavicon(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]string{"auth off": newEnv(t).url, "auth on": newAuthEnv(t).url} {
		e := &env{url: url}
		page := e.do(t, "GET", "/", "")
		require.Equal(t, 200, page.status)
		m := regexp.MustCompile(`defaultQuery: ("(?:[^"\\]|\\.)*")`).FindStringSubmatch(page.body)
		require.NotNil(t, m, "%s: the page sets GraphiQL's defaultQuery", name)
		var q string
		require.NoError(t, json.Unmarshal([]byte(m[1]), &q))
		r := e.do(t, "POST", "/graphql", gqlBody(q), "Accept", "application/graphql-response+json")
		require.Equal(t, 200, r.status, "%s: %s", name, r.body)
		g := decode[gqlReply](t, r.body)
		assert.Empty(t, g.Errors, name)
		assert.Contains(t, g.Data, "titleList", name)

		assert.Contains(t, page.body, `<link rel="icon" href="/favicon.ico">`)
		ico := e.do(t, "GET", "/favicon.ico", "")
		assert.Equal(t, 200, ico.status, name)
		assert.Equal(t, "image/x-icon", ico.header.Get("Content-Type"))
		assert.True(t, strings.HasPrefix(ico.body, "\x00\x00\x01\x00"), "an ICO file")
	}
	// Without the playground (production), the favicon is still there: the
	// console asks for it too.
	e := newEnv(t, func(o *gateway.Options) { o.DisablePlayground = true })
	assert.Equal(t, 404, e.do(t, "GET", "/", "").status)
	assert.Equal(t, 200, e.do(t, "GET", "/favicon.ico", "").status)
}
