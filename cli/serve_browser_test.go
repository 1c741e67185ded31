package cli

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeFlagsForBrowsers(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 10000, cfg.Browser.MaxSubscriptions)
	assert.Equal(t, 100, cfg.Browser.MaxSubscriptionsPerConnection)
	assert.Equal(t, 15*time.Second, cfg.Browser.KeepAlive)
	assert.Empty(t, cfg.Browser.CORSOrigins)

	t.Setenv("KCK_CORS_ORIGINS", "http://localhost:5173")
	cfg, err = parseServe([]string{"--max-subscriptions", "5", "--max-subscriptions-per-connection", "-1", "--ws-keepalive", "3s"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"http://localhost:5173"}, []string(cfg.Browser.CORSOrigins))
	assert.Equal(t, 5, cfg.Browser.MaxSubscriptions)
	assert.Equal(t, -1, cfg.Browser.MaxSubscriptionsPerConnection)
	assert.Equal(t, 3*time.Second, cfg.Browser.KeepAlive)
	cfg, err = parseServe([]string{"--cors-origins", "https://a.example, https://*.b.example"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a.example", "https://*.b.example"}, []string(cfg.Browser.CORSOrigins))

	_, err = parseServe([]string{"--max-subscriptions", "0"}, io.Discard)
	assert.ErrorContains(t, err, "subscription limit of 0")
	_, err = parseServe([]string{"--ws-keepalive", "0s"}, io.Discard)
	assert.ErrorContains(t, err, "--ws-keepalive")
}
