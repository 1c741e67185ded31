package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testConfig(t *testing.T, dir string) serveConfig {
	t.Helper()
	cfg, err := parseServe([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, io.Discard)
	require.NoError(t, err)
	return cfg
}

// startServe runs serve until the returned stop is called; stop returns
// serve's error.
func startServe(t *testing.T, cfg serveConfig) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("gateway did not start")
	}
	return "", nil
}

func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", v)
	return v
}

func titleCount(t *testing.T, base string) float64 {
	t.Helper()
	v := postJSON(t, base+"/graphql", `{"query":"{ authorStats(authorId: 7) { titleCount } }"}`)
	return v["data"].(map[string]any)["authorStats"].(map[string]any)["titleCount"].(float64)
}

// An added title, and the products that show it, survive a restart on the
// same data directory; shutdown is clean.
func TestServeKeepsUpdatesAcrossRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	base, stop := startServe(t, cfg)
	n := titleCount(t, base)
	postJSON(t, base+"/update", `{"name":"add_title","input":{"authorId":7,"title":"After the Restart","year":2026}}`)
	assert.Equal(t, n+1, titleCount(t, base))
	require.NoError(t, stop())

	base, stop = startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	assert.Equal(t, n+1, titleCount(t, base), "served from the store after restart")
	v := postJSON(t, base+"/graphql", `{"query":"mutation { refresh(key: \"title_list/7\") { value } }"}`)
	list := v["data"].(map[string]any)["refresh"].(map[string]any)["value"].([]any)
	assert.Equal(t, "After the Restart", list[len(list)-1].(map[string]any)["title"], "recomputed from the replayed dataset")
}

// Shutdown waits for a request in flight.
func TestServeShutsDownGracefully(t *testing.T) {
	base, stop := startServe(t, testConfig(t, t.TempDir()))
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, stop())
	_, err = http.Get(base + "/healthz")
	assert.Error(t, err, "no longer listening")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The real entry point stops cleanly on SIGTERM (delivered to this test
// process, which runServe catches).
func TestRunServeStopsOnSIGTERM(t *testing.T) {
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json"}, io.Discard, &stderr)
	}()
	addr := regexp.MustCompile(`"addr":"([^"]+)"`)
	var base string
	require.Eventually(t, func() bool {
		m := addr.FindStringSubmatch(stderr.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
		assert.Contains(t, stderr.String(), "stopped cleanly")
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown after SIGTERM")
	}
}

func TestCLIArguments(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 0, run([]string{"help"}, &out, &errOut))
	assert.Contains(t, out.String(), "serve")
	assert.Equal(t, 0, run([]string{"serve", "--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "KCK_HTTP_ADDR")
	assert.Equal(t, 2, run([]string{"nope"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"serve", "--memory-mb", "0"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"serve", "--log-format", "xml"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"serve", "extra"}, &out, &errOut))

	t.Setenv("KCK_HTTP_ADDR", "127.0.0.1:9999")
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", cfg.Addr)
	cfg, err = parseServe([]string{"--addr", ":1234"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":1234", cfg.Addr, "flag over env")
}
