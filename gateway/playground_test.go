package gateway_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
