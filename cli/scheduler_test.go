package cli

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// metric reads one sample of the gateway's /metrics, e.g.
// `kck_cache_reads_total{outcome="miss"}`; 0 when absent.
func metric(t *testing.T, base, sample string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

// waitReady waits for /readyz to say ready (boot warming done). The bound
// is generous: on Cassandra, beside the other packages' tests loading the
// same cluster on two cores, warming the demo's 601 keys took over 30 s.
func waitReady(t *testing.T, base string) {
	t.Helper()
	gatewaytest.WaitReady(t, nil, base)
}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The demo gateway warms at boot: once /readyz says ready, every author,
// every member of title_list's domain and top_authors/10 is served from
// memory, with no primer run.
func TestServeWarmsBeforeReady(t *testing.T) {
	t.Parallel()
	base, stop := startServe(t, testConfig(t, t.TempDir()))
	defer func() { require.NoError(t, stop()) }()
	waitReady(t, base)

	authors := len(demo.NewDataset().Authors())
	require.Equal(t, float64(2*authors+1), metric(t, base, `kck_warm_keys_total{outcome="ok"}`), "authors, title lists (the domain's members) and top_authors/10")
	require.Equal(t, 1.0, metric(t, base, "kck_warm_done"))
	require.Equal(t, 120.0, metric(t, base, `kck_freshness_target_seconds{product="top_authors"}`))
	require.Equal(t, 1.0, metric(t, base, `kck_product_values_held{product="top_authors"}`), "top_authors/10, warmed")
	require.Equal(t, 0.0, metric(t, base, `kck_product_values_beyond_target{product="top_authors"}`))
	runs := metric(t, base, `kck_primer_runs_total{product="title_list"}`)
	require.Equal(t, float64(authors), runs)
	hits := metric(t, base, `kck_cache_reads_total{outcome="hit_memory"}`)
	for _, q := range []string{
		`{"query":"{ titleList(authorId: 250) { id } author(authorId: 17) { name } topAuthors(n: 10) { authorId } }"}`,
		`{"query":"{ titleList(authorId: 1) { id } authorIds }"}`,
	} {
		v := postJSON(t, base+"/graphql", q)
		require.Nil(t, v["errors"], "%v", v)
	}
	require.Equal(t, runs, metric(t, base, `kck_primer_runs_total{product="title_list"}`), "no primer ran")
	require.Equal(t, hits+5, metric(t, base, `kck_cache_reads_total{outcome="hit_memory"}`), "all five from memory")
}

// A gateway whose warming takes time reports not ready until it is done
// (here a warm query that sleeps in Postgres); --ready-after-warm=false
// reports ready at once.
func TestServeOnPostgresNotReadyWhileWarming(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	dir := t.TempDir()
	require.NoError(t, fs.WalkDir(demo.SQL(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(demo.SQL(), p)
		if err != nil {
			return err
		}
		if p == "author.sql" {
			raw = []byte(strings.Replace(string(raw), "SELECT id FROM authors ORDER BY id",
				"SELECT id FROM authors, (SELECT pg_sleep(1.5)) slow ORDER BY id", 1))
			require.Contains(t, string(raw), "pg_sleep")
		}
		return os.WriteFile(filepath.Join(dir, p), raw, 0o644)
	}))

	for _, waitForWarming := range []bool{true, false} {
		cfg := testConfig(t, t.TempDir())
		cfg.PostgresURL, cfg.SQLDir, cfg.ReadyAfterWarm = url, dir, waitForWarming
		base, stop := startServe(t, cfg)
		code, body := readyz(t, base)
		if waitForWarming {
			require.Equal(t, http.StatusServiceUnavailable, code, body)
			require.Contains(t, body, "warming")
			waitReady(t, base)
			require.Equal(t, 1.0, metric(t, base, "kck_warm_done"))
			require.Equal(t, 601.0, metric(t, base, `kck_warm_keys_total{outcome="ok"}`))
		} else {
			require.Equal(t, 200, code, body)
			require.Equal(t, 0.0, metric(t, base, "kck_warm_done"), "still warming")
		}
		require.NoError(t, stop())
	}
}

// kck warm, kck refresh, kck queue, kck dump and kck load on the embedded
// store, as an operator runs them with the gateway stopped.
func TestWarmRefreshQueueCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The embedded store and the Go demo, whatever make test exports.
	kck := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		if len(args) > 1 && args[1] != "--help" && args[1] != "--store" {
			fixed := []string{args[0], "--store=embedded"}
			if args[0] == "warm" || args[0] == "refresh" || args[0] == "invalidate" {
				fixed = append(fixed, "--postgres-url=")
			}
			args = append(fixed, args[1:]...)
		}
		code := run(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, c := range []string{"warm", "refresh", "invalidate", "queue", "dump", "load"} {
		code, _, help := kck(c, "--help")
		require.Equal(t, 0, code, c)
		require.Contains(t, help, "Usage: kck "+c, c)
		require.Contains(t, help, "-store", c)
	}

	code, out, errOut := kck("warm", "--data-dir", dir, "top_authors")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "top_authors: 1 keys, 0 failed")
	require.Contains(t, errOut, "warming done")
	code, out, _ = kck("dump", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Equal(t, 1, strings.Count(out, "\n"))
	require.Contains(t, out, `"key":"top_authors/10"`)

	code, out, errOut = kck("warm", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	authors := len(demo.NewDataset().Authors())
	require.Contains(t, out, "every product: "+strconv.Itoa(2*authors+1)+" keys, 0 failed")
	code, out, _ = kck("dump", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Equal(t, 2*authors+2, strings.Count(out, "\n"), "each warmed key stored once, and the domain author_ids")

	code, out, errOut = kck("refresh", "--data-dir", dir, "title_list/042")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^title_list/42 version \d+ computed at `, out)

	code, _, errOut = kck("refresh", "--data-dir", dir, "title_list/1", "nope/1")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "no product named nope")
	code, _, errOut = kck("warm", "--data-dir", dir, "nope")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `no product named "nope"`)
	code, _, _ = kck("refresh", "--data-dir", dir)
	require.Equal(t, 2, code, "no key")
	code, _, errOut = kck("refresh", "--store", "cassandra", "--cassandra-hosts", "", "a/1")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "needs --cassandra-hosts")

	code, out, errOut = kck("invalidate", "--data-dir", dir, "author/3", "author/4")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "2 keys invalidated")
	code, out, _ = kck("dump", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.NotContains(t, out, `"key":"author/3"`)
	require.Contains(t, out, `"key":"author/5"`)
	code, _, errOut = kck("invalidate", "--data-dir", dir, "author/x")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "author/x")

	code, out, errOut = kck("refresh", "--data-dir", dir, "--queue", "title_list/5", "title_list/6", "title_list/5")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "3 keys queued")
	code, out, _ = kck("queue", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "depth 2")
	require.Contains(t, out, "next 2\n  title_list/5\n  title_list/6\n", "the most requested first")

	// A product name alone, and --prefix: the stored keys that match.
	code, out, errOut = kck("invalidate", "--data-dir", dir, "author")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, fmt.Sprintf("%d stored keys match author/", authors-2), "author/3 and author/4 were gone")
	require.Contains(t, out, fmt.Sprintf("%d keys invalidated", authors-2))
	code, out, _ = kck("dump", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.NotContains(t, out, `"key":"author/`)
	require.Contains(t, out, `"key":"title_list/29"`, "other products are left")
	code, out, errOut = kck("refresh", "--data-dir", dir, "--prefix", "title_list/29", "top_authors/1")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "12 stored keys match title_list/29, top_authors/1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 12, "title_list/29, title_list/290 to 299 and top_authors/10, in key order")
	require.Regexp(t, `^title_list/29 version`, lines[0])
	require.Regexp(t, `^title_list/299 version`, lines[10])
	require.Regexp(t, `^top_authors/10 version`, lines[11])
	code, _, errOut = kck("refresh", "--data-dir", dir, "title_list", "title_list/x")
	require.Equal(t, 2, code, "a bad key among product names")
	require.Contains(t, errOut, "title_list/x")
	code, _, errOut = kck("refresh", "--data-dir", dir, "--prefix", "")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "empty prefix")
}

// kck refresh PRODUCT --queue on Cassandra, beside nothing: every stored key
// of the product is found with a scan of the cluster and queued.
func TestRefreshProductOnCassandra(t *testing.T) {
	t.Parallel()
	ks := cassandratest.Keyspace(t)
	store := []string{"--store=cassandra", "--cassandra-hosts", strings.Join(ks.Hosts, ","), "--cassandra-keyspace", ks.Keyspace, "--postgres-url="}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(append([]string{"warm"}, append(store, "top_authors")...), &out, &errOut), errOut.String())
	out.Reset()
	errOut.Reset()
	require.Equal(t, 0, run(append([]string{"refresh"}, append(store, "--queue", "top_authors", "author/7")...), &out, &errOut), errOut.String())
	require.Contains(t, errOut.String(), "1 stored keys match top_authors/")
	require.Contains(t, out.String(), "2 keys queued")
	out.Reset()
	require.Equal(t, 0, run(append([]string{"queue"}, store[:5]...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "depth 2")
	require.Contains(t, out.String(), "top_authors/10")
}

// kck refresh and kck invalidate on the PostgreSQL store, beside its
// gateways, announce on the store's own bus: no --bus-url is needed (on
// Cassandra, one is).
func TestOfflineWritesOnPostgresStore(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	store := []string{"--store=postgres", "--store-postgres-url", cfg.URL, "--store-postgres-schema", cfg.Schema, "--postgres-url=", "--bus-url="}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(append([]string{"refresh"}, append(store, "author/7")...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "author/7 version")
	require.Equal(t, 0, run(append([]string{"invalidate"}, append(store, "author/7")...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "1 keys invalidated")
}
