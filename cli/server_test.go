package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/internal/scriptrun"
	"github.com/kck-go/kck/source"
)

func testConfig(t *testing.T, dir string) serveConfig {
	t.Helper()
	cfg, err := parseServe([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, io.Discard)
	require.NoError(t, err)
	// make test exports the service URLs; a test opts in to them.
	cfg.Store, cfg.PostgresURL = "embedded", ""
	cfg.DrainDelay = 0 // stop() waits for the drain
	return cfg
}

// demoDatabase is a fresh Postgres database with the demo loaded (kck demo
// load), and what loading it printed.
func demoDatabase(t *testing.T) (url, loaded string) {
	t.Helper()
	url = pgtest.Database(t)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"demo", "load", "--postgres-url", url}, &out, &errOut), errOut.String())
	return url, out.String()
}

// startServe runs serve until the returned stop is called; stop returns
// serve's error.
func startServe(t *testing.T, cfg serveConfig) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(newTestLog(t), nil))
	go func() { done <- serve(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(5 * time.Minute):
		// Only a hang guard: starting waits on the store (a Cassandra
		// session, its schema) and on Postgres, each with timeouts of
		// their own, and takes what a busy machine gives it.
		cancel()
		t.Fatal("gateway did not start in 5 minutes")
	}
	return "", nil
}

// testLog passes a gateway's log lines to t.Log, shown when the test fails
// (or with -v), and drops lines written after the test ended.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() { l.mu.Lock(); l.done = true; l.mu.Unlock() })
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
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

// The drain delay: once told to stop, the gateway answers /readyz with 503
// at once and serves on for the delay; then it stops listening.
func TestServeDrainDelay(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.DrainDelay = 2 * time.Second
	base, stop := startServe(t, cfg)
	waitReady(t, base)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- stop() }()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, time.Minute, 10*time.Millisecond)
	resp, err := http.Get(base + "/fetch?key=title_list/42")
	require.NoError(t, err, "still serving during the delay")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, <-done)
	assert.GreaterOrEqual(t, time.Since(start), cfg.DrainDelay)
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

// The real entry point drains on SIGTERM (delivered to this test process,
// which runServe catches): /readyz answers 503 at once while requests are
// still served for the drain delay, which a second signal cuts short; then
// it stops cleanly.
func TestRunServeStopsOnSIGTERM(t *testing.T) {
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json", "--drain-delay", "10m"}, io.Discard, &stderr)
	}()
	addr := regexp.MustCompile(`"addr":"([^"]+)"`)
	var base string
	require.Eventually(t, func() bool {
		m := addr.FindStringSubmatch(stderr.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}, 2*time.Minute, 10*time.Millisecond)
	waitReady(t, base)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false // not listening: the healthz check below fails
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, time.Minute, 10*time.Millisecond)
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still serving")
	assert.True(t, resp.Close, "asking clients to close their connections")

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM)) // cuts the 10-minute delay short
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
		assert.Contains(t, stderr.String(), "drain delay skipped")
		assert.Contains(t, stderr.String(), "stopped cleanly")
	case <-time.After(time.Minute): // shutdown itself may take its 15 s
		t.Fatal("no shutdown after the second SIGTERM")
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

// The gateway on the Cassandra store: products land in the cluster, so a
// second gateway on the same keyspace serves them without computing.
func TestServeOnCassandra(t *testing.T) {
	t.Parallel()
	ks := cassandratest.Keyspace(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.Cassandra, cfg.Bus.URL = "cassandra", ks, natstest.URL(t)
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	waitReady(t, base)
	n := titleCount(t, base)

	store, err := cassandra.Open(context.Background(), ks)
	require.NoError(t, err)
	defer store.Close()
	e, err := store.Get(context.Background(), "author_stats/7")
	require.NoError(t, err, "the product is in Cassandra")
	assert.Contains(t, string(e.Value), fmt.Sprintf(`"titleCount":%d`, int(n)))
}

// Cassandra unreachable at start: the gateway starts, says so, is not
// ready, and still answers by computing.
func TestServeWithCassandraDown(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.Bus.URL = "cassandra", natstest.URL(t)
	cfg.Cassandra = cassandra.Config{Hosts: []string{"127.0.0.1:1"}, ConnectTimeout: time.Second}
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	assert.Contains(t, string(body), "store not connected yet")
	assert.Equal(t, float64(len(demo.NewDataset().TitlesBy(7))), titleCount(t, base))
}

func TestServeFlagsForCassandra(t *testing.T) {
	t.Setenv("KCK_CASSANDRA_HOSTS", "")
	_, err := parseServe([]string{"--store", "cassandra"}, io.Discard)
	assert.ErrorContains(t, err, "KCK_CASSANDRA_HOSTS")
	_, err = parseServe([]string{"--store", "redis"}, io.Discard)
	assert.ErrorContains(t, err, "embedded, cassandra or postgres")
	t.Setenv("KCK_STORE", "cassandra")
	t.Setenv("KCK_CASSANDRA_HOSTS", "10.0.0.1,10.0.0.2")
	t.Setenv("KCK_BUS_URL", "")
	_, err = parseServe([]string{"--cassandra-keyspace", "shop"}, io.Discard)
	assert.ErrorContains(t, err, "--bus-url", "gateways sharing Cassandra need the change bus")
	t.Setenv("KCK_BUS_URL", "nats://10.0.0.3:4222")
	cfg, err := parseServe([]string{"--cassandra-keyspace", "shop"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "cassandra", cfg.Store)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, cfg.Cassandra.Hosts)
	assert.Equal(t, "shop", cfg.Cassandra.Keyspace)
	cfg, err = parseServe([]string{"--cassandra-hosts", "a:9042,b"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"a:9042", "b"}, cfg.Cassandra.Hosts)
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	cfg := cassandratest.Config(t)
	ks := fmt.Sprintf("kck_test_migrate_%d", time.Now().UnixNano()%1e9)
	var out, errOut bytes.Buffer
	// --postgres-url= : make test exports a database without the demo tables.
	args := []string{"--cassandra-hosts", strings.Join(cfg.Hosts, ","), "--cassandra-keyspace", ks, "--replication-factor", "1", "--postgres-url="}
	require.Equal(t, 0, run(append([]string{"migrate"}, args...), &out, &errOut), errOut.String())
	require.Equal(t, 0, run(append([]string{"migrate"}, args...), &out, &errOut), "idempotent: %s", errOut.String())
	assert.Contains(t, out.String(), "keyspace "+ks+" is up to date")
	cfg.Keyspace = ks
	require.NoError(t, cassandra.DropKeyspace(context.Background(), cfg))
	assert.Equal(t, 2, run([]string{"migrate", "--replication", "dc1"}, &out, &errOut))
	assert.Equal(t, 0, run([]string{"migrate", "--help"}, &out, &errOut))
}

// The demo on Postgres: `kck demo load`, then a gateway serving the SQL
// products, fresh after a change made directly in the database.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	url, loaded := demoDatabase(t)
	assert.Contains(t, loaded, "change triggers installed")

	cfg := testConfig(t, t.TempDir())
	cfg.PostgresURL = url
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	n := titleCount(t, base)
	assert.Equal(t, float64(len(demo.NewDataset().TitlesBy(7))), n, "same data as the Go demo")

	pool, err := source.Open(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `INSERT INTO titles (author_id, title, year) VALUES (7, 'Written by psql', 2030)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return titleCount(t, base) == n+1 }, 2*time.Minute, 10*time.Millisecond,
		"the product follows a change nobody told the gateway about")

	v := postJSON(t, base+"/update", `{"name":"add_title","input":{"authorId":7,"title":"Via the updater","year":2031}}`)
	assert.Len(t, v["products"], 2)
	assert.Equal(t, n+2, titleCount(t, base), "read-your-writes")
	waitReady(t, base)
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"check", "--postgres-url", url}, &out, &errOut), out.String())
	assert.Contains(t, out.String(), "title_list.sql: title_list: ok ([Title!])")

	dir := t.TempDir()
	entries, err := demo.SQL().(interface {
		ReadDir(string) ([]fs.DirEntry, error)
	}).ReadDir(".")
	require.NoError(t, err)
	for _, e := range entries {
		b, err := fs.ReadFile(demo.SQL(), e.Name())
		require.NoError(t, err)
		if e.Name() == "title_list.sql" {
			b = []byte(strings.Replace(string(b), "title, year\n", "title AS name, year::text AS year\n", 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	out.Reset()
	assert.Equal(t, 1, run([]string{"check", "--postgres-url", url, "--sql-dir", dir}, &out, &errOut))
	assert.Contains(t, out.String(), `title_list.sql: title_list: GraphQL Title.title has no column "title"`)
	assert.Contains(t, out.String(), "title_list.sql: title_list: GraphQL Title.year is Int! but column year is text")

	// A product no schema line declares: its typed field, from the
	// statement; a kck:field that does not fit is a problem, with its line.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "by_year.sql"), []byte(
		"-- kck:product by_year(year int)\n-- kck:type Title\nSELECT id, author_id AS \"authorId\", title, year FROM titles WHERE year = :year"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "odd.sql"), []byte(
		"-- kck:product odd()\n-- kck:field title Int\nSELECT title FROM titles"), 0o644))
	out.Reset()
	assert.Equal(t, 1, run([]string{"check", "--postgres-url", url, "--sql-dir", dir}, &out, &errOut))
	assert.Contains(t, out.String(), "by_year.sql: by_year: ok (byYear(year: Int!): [Title!], typed from its statement)")
	assert.Contains(t, out.String(), "odd.sql:2: kck:field title: column title is String, which cannot be served as Int")
}

// kck serve --migrate with the cluster down at start serves (not ready),
// and once the cluster answers creates the keyspace, connects and is ready:
// no manual step. The "cluster" is a TCP proxy to a real node that refuses
// connections (nothing listens) until the test starts it.
func TestServeMigratesOnceCassandraAnswers(t *testing.T) {
	t.Parallel()
	node := cassandratest.Hosts(t)[0]
	if !strings.Contains(node, ":") {
		node += ":9042"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // refused until the proxy starts

	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.Bus.URL = "cassandra", natstest.URL(t)
	cfg.Migrate, cfg.ReplicationFactor = true, 1
	cfg.Cassandra = cassandra.Config{Hosts: []string{addr}, Keyspace: scriptrun.UniqueName("kck_test_late_"), ConnectTimeout: time.Second}
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	ready := func() int {
		resp, err := http.Get(base + "/readyz")
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 503, ready(), "not ready while the cluster is down")

	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", node)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	// The late connection retries with a backoff of up to 30 s; the bound
	// is a hang guard.
	require.Eventually(t, func() bool { return ready() == 200 }, 3*time.Minute, 250*time.Millisecond, "ready once the cluster answers")
	assert.Equal(t, float64(len(demo.NewDataset().TitlesBy(7))), titleCount(t, base))
	s, err := cassandra.Open(context.Background(), cassandra.Config{Hosts: cassandratest.Hosts(t), Keyspace: cfg.Cassandra.Keyspace})
	require.NoError(t, err, "the keyspace was created")
	require.NoError(t, s.Close())
}

// --cassandra-address-map: set by the flag, its variable or the config
// file, and a bad value is refused at start naming the flag.
func TestServeCassandraAddressMap(t *testing.T) {
	t.Setenv("KCK_CONFIG", "")
	t.Setenv("KCK_STORE", "cassandra")
	t.Setenv("KCK_CASSANDRA_HOSTS", "127.0.0.1:40001")
	t.Setenv("KCK_CASSANDRA_ADDRESS_MAP", "")
	t.Setenv("KCK_BUS_URL", "nats://127.0.0.1:4222")
	cfg, err := parseServe([]string{"--cassandra-address-map", "127.0.0.21:9042=127.0.0.1:40001"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.21:9042=127.0.0.1:40001", cfg.Cassandra.AddressMap)

	p := filepath.Join(t.TempDir(), "kck.yaml")
	require.NoError(t, os.WriteFile(p, []byte("cassandra-address-map: [\"10.0.0.1:9042=127.0.0.1:1\", \"10.0.0.2:9042=127.0.0.2:2\"]\n"), 0o600))
	cfg, err = parseServe([]string{"--config", p}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.1:9042=127.0.0.1:1,10.0.0.2:9042=127.0.0.2:2", cfg.Cassandra.AddressMap)

	t.Setenv("KCK_CASSANDRA_ADDRESS_MAP", "10.0.0.1:9042=127.0.0.1:3")
	cfg, err = parseServe([]string{"--config", p}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.1:9042=127.0.0.1:3", cfg.Cassandra.AddressMap, "the variable wins over the file")

	t.Setenv("KCK_CASSANDRA_ADDRESS_MAP", "10.0.0.1=127.0.0.1:3")
	_, err = parseServe(nil, io.Discard)
	assert.ErrorContains(t, err, `--cassandra-address-map (KCK_CASSANDRA_ADDRESS_MAP): pair 1 "10.0.0.1=127.0.0.1:3": announced address`)
	t.Setenv("KCK_STORE", "embedded")
	_, err = parseServe(nil, io.Discard)
	assert.NoError(t, err, "the embedded store has no use for it")
}

// The tracing flags: set by the flag, its variable or the config file; a
// setting that cannot work is refused at start, naming it; unset, the
// OTEL_* variables decide.
func TestServeTracingFlags(t *testing.T) {
	for _, v := range []string{"KCK_CONFIG", "KCK_OTEL_ENDPOINT", "KCK_OTEL_PROTOCOL", "KCK_TRACE_SAMPLE_RATIO",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"} {
		t.Setenv(v, "")
	}
	cfg, err := parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.False(t, cfg.Tracing.On(), "nothing configured: off")
	assert.Negative(t, cfg.Tracing.SampleRatio, "unset: the OTEL_* variables decide")

	cfg, err = parseServe([]string{"--otel-endpoint", "http://collector:4318", "--otel-protocol", "grpc", "--trace-sample-ratio", "0.01"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://collector:4318", cfg.Tracing.Endpoint)
	assert.Equal(t, "grpc", cfg.Tracing.Protocol)
	assert.Equal(t, 0.01, cfg.Tracing.SampleRatio)
	assert.True(t, cfg.Tracing.On())

	p := filepath.Join(t.TempDir(), "kck.yaml")
	require.NoError(t, os.WriteFile(p, []byte("otel-endpoint: http://c:4318\ntrace-sample-ratio: 0.5\n"), 0o600))
	t.Setenv("KCK_TRACE_SAMPLE_RATIO", "0.25")
	cfg, err = parseServe([]string{"--config", p}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://c:4318", cfg.Tracing.Endpoint)
	assert.Equal(t, 0.25, cfg.Tracing.SampleRatio, "the variable wins over the file")

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4318")
	t.Setenv("KCK_TRACE_SAMPLE_RATIO", "")
	cfg, err = parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.Tracing.On(), "OTEL_EXPORTER_OTLP_ENDPOINT turns it on")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")

	for _, tc := range []struct {
		args []string
		env  [2]string
		want string
	}{
		{args: []string{"--otel-endpoint", "collector:4318"}, want: "--otel-endpoint (KCK_OTEL_ENDPOINT)"},
		{args: []string{"--otel-endpoint", "http://c:4318", "--otel-protocol", "udp"}, want: "--otel-protocol (KCK_OTEL_PROTOCOL)"},
		{args: []string{"--trace-sample-ratio", "2"}, want: "trace-sample-ratio"},
		{env: [2]string{"KCK_TRACE_SAMPLE_RATIO", "often"}, want: "KCK_TRACE_SAMPLE_RATIO"},
		{env: [2]string{"OTEL_TRACES_SAMPLER", "sometimes"}, want: "OTEL_TRACES_SAMPLER"},
	} {
		if tc.env[0] != "" {
			t.Setenv(tc.env[0], tc.env[1])
		}
		_, err := parseServe(tc.args, io.Discard)
		require.Error(t, err, "%v %v", tc.args, tc.env)
		assert.Contains(t, err.Error(), tc.want)
		if tc.env[0] != "" {
			t.Setenv(tc.env[0], "")
		}
	}
}
