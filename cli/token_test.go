package cli

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSecret = "a-test-secret-of-at-least-32-bytes"

func TestAuthFlagsAreChecked(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"serve", "--auth-jwt-secret", "short"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "at least 32")
	assert.Equal(t, 2, run([]string{"serve", "--auth-jwt-secret", testSecret, "--auth-leeway", "61s"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"token", "--sub", "5"}, &out, &errOut), "no secret")
	assert.Equal(t, 2, run([]string{"token", "--auth-jwt-secret", "short"}, &out, &errOut))

	t.Setenv("KCK_AUTH_PUBLIC_KEYS", "a.pem,b.pem")
	cfg, err := parseServe([]string{"--auth-public-key", "c.pem", "--auth-public-key", "d.pem"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"c.pem", "d.pem"}, cfg.Auth.PublicKeys, "flags replace the variable, and add up")
	cfg, err = parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"a.pem", "b.pem"}, cfg.Auth.PublicKeys)
}

// kck token mints what a gateway with the same secret accepts: the demo
// with auth on, over HTTP.
func TestServeWithAuthAndKckToken(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Secret = testSecret
	cfg.Scheduler = false
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()

	mint := func(args ...string) string {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(append([]string{"token", "--auth-jwt-secret", testSecret}, args...), &out, &errOut), errOut.String())
		return strings.TrimSpace(out.String())
	}
	tok := mint("--sub", "5", "--scope", "stats:read titles:write", "--ttl", "1h")
	get := func(path, token string) int {
		req, err := http.NewRequest("GET", base+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, get("/fetch?key=title_list/5", ""), "public")
	assert.Equal(t, 401, get("/fetch?key=author_stats/5", ""))
	assert.Equal(t, 200, get("/fetch?key=author_stats/5", tok))
	assert.Equal(t, 403, get("/fetch?key=author_stats/6", tok))
	assert.Equal(t, 200, get("/fetch?key=my_titles/5", tok))
	assert.Equal(t, 401, get("/fetch?key=author_stats/5", tok+"x"))
	assert.Equal(t, 401, get("/fetch?key=author_stats/5", "garbage"))
	assert.Equal(t, 403, get("/metrics", tok))
	assert.Equal(t, 200, get("/metrics", mint("--scope", "kck:admin")))
}
