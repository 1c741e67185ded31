package cli

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/ratelimit"
)

func TestLimitFlags(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	l := cfg.Limits
	assert.Equal(t, 15000, l.GraphQL.MaxTokens)
	assert.Equal(t, 12, l.GraphQL.MaxDepth)
	assert.Equal(t, 30, l.GraphQL.MaxAliases)
	assert.Equal(t, 50, l.GraphQL.MaxRootFields)
	assert.Equal(t, 500, l.GraphQL.MaxFields)
	assert.Equal(t, 20, l.GraphQL.MaxRepeats)
	assert.Equal(t, 1000, l.GraphQL.MaxComplexity)
	assert.Equal(t, 10, l.GraphQL.ProductCost)
	assert.Equal(t, 20, l.MaxMisses)
	assert.Equal(t, 5*time.Second, l.NegativeTTL)
	assert.True(t, cfg.Introspection)
	assert.True(t, l.Playground)

	// --production turns introspection and the playground off, unless asked.
	cfg, err = parseServe([]string{"--production"}, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.Introspection)
	assert.False(t, cfg.Limits.Playground)
	cfg, err = parseServe([]string{"--production", "--playground"}, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.Introspection)
	assert.True(t, cfg.Limits.Playground)
	t.Setenv("KCK_INTROSPECTION", "true")
	cfg, err = parseServe([]string{"--production"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.Introspection)

	// Variables and the config file set limits too.
	t.Setenv("KCK_MAX_DEPTH", "5")
	file := filepath.Join(t.TempDir(), "kck.yaml")
	require.NoError(t, os.WriteFile(file, []byte("max-aliases: 3\nmax-misses-per-request: -1\nnegative-ttl: 0s\n"), 0o600))
	cfg, err = parseServe([]string{"--config", file, "--max-root-fields", "7"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 5, cfg.Limits.GraphQL.MaxDepth)
	assert.Equal(t, 3, cfg.Limits.GraphQL.MaxAliases)
	assert.Equal(t, 7, cfg.Limits.GraphQL.MaxRootFields)
	assert.Equal(t, -1, cfg.Limits.MaxMisses)
	assert.Zero(t, cfg.Limits.NegativeTTL, "0s: app.Open turns the negative cache off")

	_, err = parseServe([]string{"--max-depth", "0"}, io.Discard)
	assert.Error(t, err)
	_, err = parseServe([]string{"--product-cost", "0"}, io.Discard)
	assert.Error(t, err)
}

// The caches together stay within --memory-mb.
func TestSplitMemory(t *testing.T) {
	for _, mb := range []int{1, 7, 256, 4096} {
		for _, auth := range []bool{false, true} {
			b := splitMemory(mb, auth)
			assert.Equal(t, uint64(mb)<<20, b.Tier+b.Responses+b.Queries+b.APQ+b.Negative+b.Bus+b.Tokens)
			assert.Greater(t, b.Tier, b.Responses)
			assert.Equal(t, auth, b.Tokens > 0)
		}
	}
}

// The whole gateway with --production and a low limit: introspection and
// the playground are gone, a document past a limit is refused and counted.
func TestServeProductionLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Scheduler = false
	cfg2, err := parseServe([]string{"--production", "--max-depth", "3"}, io.Discard)
	require.NoError(t, err)
	cfg.Limits, cfg.Introspection = cfg2.Limits, cfg2.Introspection
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()

	post := func(q string) (int, string) {
		resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"`+q+`"}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(`{ __schema { queryType { name } } }`)
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `"limit":"introspection"`)
	code, body = post(`{ a { b { c { d } } } }`)
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `"limit":"depth"`)
	code, _ = post(`{ author(authorId: 1) { name } }`)
	assert.Equal(t, 200, code)

	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(m), `kck_refused_total{limit="depth"} 1`)
	assert.Contains(t, string(m), `kck_refused_total{limit="introspection"} 1`)
}

// --compression and --compress-min-bytes reach the gateway: a response
// kept in the response cache goes out in the coding asked for, or in
// identity with --compression=false.
func TestServeCompressionFlags(t *testing.T) {
	t.Parallel()
	query := `{"query":"{ authorStats(authorId: 1) { authorId titleCount } }"}`
	get := func(base string) http.Header {
		for i := 0; i < 2; i++ { // the second is the response cache's hit
			req, err := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(query))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept-Encoding", "gzip")
			resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decoding
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			if i == 1 {
				return resp.Header
			}
		}
		return nil
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--compress-min-bytes", "-1"}, "gzip"},
		{[]string{"--compress-min-bytes", "-1", "--compression=false"}, ""},
	} {
		cfg, err := parseServe(append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...), io.Discard)
		require.NoError(t, err)
		cfg.Store, cfg.PostgresURL = "embedded", ""
		base, stop := startServe(t, cfg)
		assert.Equal(t, tc.want, get(base).Get("Content-Encoding"), "%v", tc.args)
		require.NoError(t, stop())
	}
}

// A compute lease shorter than the primer timeout is refused at start,
// naming both flags: a primer still running when its lease ends would let
// another gateway compute the same key. --primer-timeout makes room.
func TestServeLeaseAtLeastPrimerTimeout(t *testing.T) {
	_, err := parseServe([]string{"--compute-lease", "4s"}, io.Discard)
	require.ErrorContains(t, err, "--compute-lease 4s is shorter than --primer-timeout 30s")
	cfg, err := parseServe([]string{"--compute-lease", "4s", "--primer-timeout", "4s"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 4*time.Second, cfg.PrimerTimeout)
}

// The per-client rate limits' flags: off by default, on at the documented
// defaults with --production (each flag overriding its own), from
// variables too; a burst defaults to twice the rate.
func TestRateLimitFlags(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.RateLimit.On(), "off by default")
	assert.Equal(t, "sub", cfg.RateLimit.Claim)

	cfg, err = parseServe([]string{"--production"}, io.Discard)
	require.NoError(t, err)
	p := app.ProductionRates()
	assert.Equal(t, p.Requests, cfg.RateLimit.Requests)
	assert.Equal(t, p.Misses, cfg.RateLimit.Misses)
	assert.Equal(t, p.Subscriptions, cfg.RateLimit.Subscriptions)
	assert.Equal(t, p.Connections, cfg.RateLimit.Connections)

	cfg, err = parseServe([]string{"--production", "--client-rate", "7", "--client-miss-burst", "3", "--client-claim", "client_id",
		"--trusted-proxies", "10.0.0.0/8, 192.0.2.1"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ratelimit.Rate{PerSecond: 7, Burst: p.Requests.Burst}, cfg.RateLimit.Requests)
	assert.Equal(t, ratelimit.Rate{PerSecond: p.Misses.PerSecond, Burst: 3}, cfg.RateLimit.Misses)
	assert.Equal(t, "client_id", cfg.RateLimit.Claim)
	assert.Equal(t, []string{"10.0.0.0/8", "192.0.2.1"}, cfg.RateLimit.TrustedProxies)

	t.Setenv("KCK_CLIENT_RATE", "2.5")
	cfg, err = parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ratelimit.Rate{PerSecond: 2.5, Burst: 5}, cfg.RateLimit.Requests, "a burst of twice the rate")

	for _, bad := range [][]string{{"--client-rate", "-1"}, {"--client-rate", "1", "--trusted-proxies", "not-an-address"}} {
		_, err = parseServe(bad, io.Discard)
		assert.Error(t, err, "%v", bad)
	}
}

// The whole gateway with a per-client rate: the third request of a client
// with a burst of two is 429 with Retry-After; /healthz is not counted.
func TestServeRateLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg2, err := parseServe([]string{"--client-rate", "0.001", "--client-burst", "2"}, io.Discard)
	require.NoError(t, err)
	cfg.RateLimit = cfg2.RateLimit
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	for i, want := range []int{200, 200, 429} {
		resp, err := http.Get(base + "/fetch?key=author/7")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "request %d: %s", i+1, b)
		if want == 429 {
			assert.NotEmpty(t, resp.Header.Get("Retry-After"))
			assert.Contains(t, string(b), "RATE_LIMITED")
		}
	}
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}
