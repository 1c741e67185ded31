// Package outage runs the real gateway (the kck binary) while what it
// depends on fails: PostgreSQL stopped or its LISTEN connection cut (each
// test on a throwaway server of its own, never the shared one), Cassandra
// unreachable (through a TCP proxy the test closes, never by stopping a
// shared node). Each test states the outcome issue 14 expects and checks it.
package outage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/gatewaytest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(gatewaytest.MainWithKCK(m, "outage", &binary)) }

var client = &http.Client{Timeout: 60 * time.Second}

// gateway is one kck serve process; logs keeps what it logged.
type gateway struct {
	base string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []string
}

// start runs kck serve with args and env (KCK_* variables), and waits for
// /readyz unless wait is false.
func start(t *testing.T, wait bool, env []string, args ...string) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", addr, "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(append(os.Environ(), "KCK_POSTGRES_URL=", "KCK_STORE=embedded", "KCK_DRAIN_DELAY=0s"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	g := &gateway{base: "http://" + addr, cmd: cmd}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			g.mu.Lock()
			g.logs = append(g.logs, sc.Text())
			g.mu.Unlock()
			t.Logf("gateway: %s", sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		<-done
	})
	if wait {
		gatewaytest.WaitReady(t, client, g.base)
	}
	return g
}

type reply struct {
	status  int
	body    []byte
	elapsed time.Duration
}

func (g *gateway) do(t *testing.T, method, path, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, g.base+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	began := time.Now()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, b, time.Since(began)}
}

// fetched is a /fetch answer: a product, or an error.
type fetched struct {
	Key     string          `json:"key"`
	Version string          `json:"version"`
	Stale   bool            `json:"stale"`
	Value   json.RawMessage `json:"value"`
	Error   struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (g *gateway) fetch(t *testing.T, key string) (int, fetched) {
	t.Helper()
	r := g.do(t, "GET", "/fetch?key="+key, "")
	var f fetched
	require.NoError(t, json.Unmarshal(r.body, &f), "%s", r.body)
	return r.status, f
}

// gqlReply is a GraphQL answer.
type gqlReply struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

func (g *gateway) graphql(t *testing.T, query string) (int, gqlReply) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	r := g.do(t, "POST", "/graphql", string(body))
	var out gqlReply
	require.NoError(t, json.Unmarshal(r.body, &out), "%s", r.body)
	return r.status, out
}

func (g *gateway) ready(t *testing.T) int {
	t.Helper()
	return g.do(t, "GET", "/readyz", "").status
}

// loadDemo loads the demo data and change triggers into the database url.
func loadDemo(t *testing.T, url string) {
	t.Helper()
	out, err := exec.Command(binary, "demo", "load", "--postgres-url", url).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func compact(b []byte) string {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return string(b)
	}
	return out.String()
}
