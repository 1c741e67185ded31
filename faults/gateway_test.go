//go:build faults

package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// requestTimeout is the gateway's bound on one request's work
// (gateway.Options.RequestTimeout's default): a fault may fail a request,
// never make it wait longer.
const requestTimeout = 30 * time.Second

var client = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: 30 * time.Second},
	Timeout:   requestTimeout + 10*time.Second,
}

// gateway is one kck serve process.
type gateway struct {
	t    *testing.T
	name string
	base string
	args []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	logs []string
}

// gatewayConfig says how to start a gateway.
type gatewayConfig struct {
	store    string // "cassandra" (default), "postgres" or "embedded"
	keyspace string
	hosts    []string // default: the suite's cluster
	postgres string
	dataDir  string
	sqlDir   string
	env      []string
	// noWait: return before /readyz answers 200.
	noWait bool
}

func startGateway(t *testing.T, name string, c gatewayConfig) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	if c.dataDir == "" {
		c.dataDir = t.TempDir()
	}
	if c.store == "" {
		c.store = "cassandra"
	}
	if c.store == "cassandra" && c.hosts == nil {
		needCassandra(t)
		c.hosts = suite.cassHosts
	}
	g := &gateway{t: t, name: name, base: "http://" + addr,
		args: []string{"serve", "--addr", addr, "--data-dir", c.dataDir, "--log-level", "info"}}
	// No drain delay: the suite stops gateways by SIGTERM and waits for them.
	g.env = append(os.Environ(), "KCK_STORE="+c.store, "KCK_POSTGRES_URL="+c.postgres, "KCK_DRAIN_DELAY=0s")
	if c.store == "cassandra" {
		g.env = append(g.env,
			"KCK_CASSANDRA_HOSTS="+strings.Join(c.hosts, ","),
			"KCK_CASSANDRA_KEYSPACE="+c.keyspace,
			"KCK_CASSANDRA_CONSISTENCY=QUORUM",
			"KCK_MIGRATE=true",
			"KCK_CASSANDRA_REPLICATION_FACTOR=3",
			"KCK_BUS_URL="+suite.busURL)
	}
	if c.store == "postgres" {
		// The store's own bus (LISTEN/NOTIFY) unless a scenario sets
		// KCK_BUS_URL (make test exports one for the suite's other tests:
		// cleared here, c.env may set it again); its store database in env
		// (default: the source's).
		g.env = append(g.env, "KCK_MIGRATE=true", "KCK_BUS_URL=")
	}
	if c.sqlDir != "" {
		g.env = append(g.env, "KCK_SQL_DIR="+c.sqlDir)
	}
	g.env = append(g.env, c.env...)
	g.start()
	t.Cleanup(g.stop)
	if !c.noWait {
		g.waitReady(3 * time.Minute)
	}
	return g
}

func (g *gateway) start() {
	t := g.t
	cmd := exec.Command(suite.binary, g.args...)
	cmd.Env = g.env
	logs, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())
	logFile, err := os.OpenFile(filepath.Join(logDir(), sanitize(t.Name())+"-"+g.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	fmt.Fprintf(logFile, "==== %s start pid %d\n", time.Now().Format(time.RFC3339Nano), cmd.Process.Pid)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer logFile.Close()
		sc := bufio.NewScanner(logs)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			g.mu.Lock()
			if len(g.logs) < 100_000 {
				g.logs = append(g.logs, line)
			}
			g.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	g.cmd, g.done = cmd, done
}

// stop ends the process (SIGTERM, then SIGKILL after 20 s).
func (g *gateway) stop() {
	if g.cmd == nil {
		return
	}
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (g *gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
}

// alive reports whether the process still runs.
func (g *gateway) alive() bool {
	select {
	case <-g.done:
		return false
	default:
		return true
	}
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

// logged returns the log lines matching re.
func (g *gateway) logged(re *regexp.Regexp) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, l := range g.logs {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func (g *gateway) readyStatus() int {
	resp, err := client.Get(g.base + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (g *gateway) waitReady(within time.Duration) {
	g.t.Helper()
	require.Eventually(g.t, func() bool {
		require.True(g.t, g.alive(), "%s exited", g.name)
		return g.readyStatus() == 200
	}, within, 50*time.Millisecond, "%s /readyz 200", g.name)
}

// get fetches a path, returning status and body.
func (g *gateway) get(path string) (int, []byte, error) {
	resp, err := client.Get(g.base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (g *gateway) post(path, body string) (int, []byte, error) {
	resp, err := client.Post(g.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// product is /fetch's answer for one key.
type product struct {
	Key     string          `json:"key"`
	Version string          `json:"version"`
	Stale   bool            `json:"stale"`
	Value   json.RawMessage `json:"value"`
}

func (g *gateway) fetch(key string) (product, error) {
	st, b, err := g.get("/fetch?key=" + key)
	if err != nil {
		return product{}, err
	}
	if st != 200 {
		return product{}, fmt.Errorf("%s: %d %s", key, st, b)
	}
	var p product
	return p, json.Unmarshal(b, &p)
}

// metrics reads every sample of /metrics, by series.
func (g *gateway) metrics() (map[string]float64, error) {
	st, b, err := g.get("/metrics")
	if err != nil {
		return nil, err
	}
	if st != 200 {
		return nil, fmt.Errorf("/metrics: %d", st)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

func (g *gateway) metric(series string) float64 {
	g.t.Helper()
	m, err := g.metrics()
	require.NoError(g.t, err)
	return m[series]
}

// process figures of a gateway, from /proc and /metrics.
type procStats struct {
	RSSMiB     float64
	Goroutines float64
	FDs        int
}

func (g *gateway) procStats() procStats {
	g.t.Helper()
	m, err := g.metrics()
	require.NoError(g.t, err)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.pid()))
	require.NoError(g.t, err)
	return procStats{RSSMiB: m["process_resident_memory_bytes"] / (1 << 20), Goroutines: m["go_goroutines"], FDs: len(fds)}
}

func logDir() string {
	d := filepath.Join(suite.repo, ".cache", "faults", "logs")
	_ = os.MkdirAll(d, 0o755)
	return d
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

func sanitize(s string) string {
	return strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(s), "_"), "_")
}

// keyspaceName is a fresh keyspace for one scenario (the gateways create it,
// RF 3, with --migrate).
func keyspaceName(t *testing.T) string { return uniqueName(t) }

// uniqueName fits both a keyspace (48) and a database name (63).
func uniqueName(t *testing.T) string {
	n := sanitize(t.Name())
	if len(n) > 36 {
		n = n[:36]
	}
	return fmt.Sprintf("f_%s_%d", n, rand.IntN(1_000_000))
}

// database creates a database on the suite's PostgreSQL with the demo
// loaded, dropped at cleanup; returns its DSN.
func database(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := uniqueName(t)
	admin, err := pgx.Connect(ctx, suite.pgAdmin)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	admin.Close(ctx)
	require.NoError(t, err)
	dsn := strings.Replace(suite.pgAdmin, "/kck?", "/"+name+"?", 1)
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, suite.pgAdmin)
		if err != nil {
			return // Postgres down at the end: the database stays, harmless
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	out, err := exec.Command(suite.binary, "demo", "load", "--postgres-url", dsn).CombinedOutput()
	require.NoError(t, err, "%s", out)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf(`DELETE FROM sales WHERE title_id IN (SELECT id FROM titles WHERE author_id > %[1]d);
		DELETE FROM titles WHERE author_id > %[1]d; DELETE FROM authors WHERE id > %[1]d`, authors))
	require.NoError(t, err)
	return dsn
}

// sqlDir copies the demo's SQL declarations to a folder and adds extra
// files (name -> content).
func sqlDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(suite.repo, "demo", "sql", "*.sql"))
	require.NoError(t, err)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), raw, 0o644))
	}
	for name, body := range extra {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}
