package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeManifest(t *testing.T, path string, docs ...string) {
	t.Helper()
	m := map[string]string{}
	for _, d := range docs {
		sum := sha256.Sum256([]byte(d))
		m[hex.EncodeToString(sum[:])] = d // GraphQL Code Generator's format
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".tmp", b, 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func TestTrustedDocumentFlags(t *testing.T) {
	cfg, err := parseServe([]string{"--trusted-documents", "m.json"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "m.json", cfg.Trusted.Path)
	assert.Empty(t, cfg.Trusted.Mode, "enforce with a manifest")
	cfg, err = parseServe([]string{"--trusted-documents", "m.json", "--trusted-documents-mode", "log", "--trusted-documents-admin-adhoc"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "log", cfg.Trusted.Mode)
	assert.True(t, cfg.Trusted.AdminAdHoc)
	for _, bad := range [][]string{{"--trusted-documents-mode", "enforce"}, {"--trusted-documents", "m.json", "--trusted-documents-mode", "strict"}} {
		_, err := parseServe(bad, io.Discard)
		assert.Error(t, err, "%v", bad)
	}
}

// The whole gateway in enforce mode with a Code Generator manifest: the
// trusted query runs, another is refused; SIGHUP reloads the manifest; a
// manifest that does not validate stops the gateway from starting.
func TestServeTrustedDocuments(t *testing.T) {
	const q = `query A { author(authorId: 7) { name } }`
	const other = `{ author(authorId: 8) { name } }`
	path := filepath.Join(t.TempDir(), "persisted-documents.json")
	writeManifest(t, path, q)
	cfg := testConfig(t, t.TempDir())
	cfg.Trusted.Path = path
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	post := func(query string) string {
		b, _ := json.Marshal(map[string]string{"query": query})
		resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(string(b)))
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return string(out)
	}
	assert.Contains(t, post(q), `"name"`)
	assert.Contains(t, post(other), "PERSISTED_QUERY_NOT_ALLOWED")

	// SIGHUP reloads now (the app listens for it while it runs).
	writeManifest(t, path, q, other)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(post(other), `"name"`) }, time.Minute, 10*time.Millisecond)

	bad := filepath.Join(t.TempDir(), "bad.json")
	writeManifest(t, bad, `query Stale { author(authorId: 7) { isbn } }`)
	cfg2 := testConfig(t, t.TempDir())
	cfg2.Trusted.Path = bad
	err := serve(t.Context(), cfg2, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `trusted document "Stale" (id `)
}
