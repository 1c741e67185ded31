// Package examples_test runs each example app (examples/<name>) in headless
// chromium against a real gateway serving the demo's SQL products from a
// real PostgreSQL: the app, built by examples/build.sh, is served from
// another origin than the gateway (so CORS and the WebSocket's origin check
// are exercised), shows an author's titles with their freshness, adds a
// title through the typed mutation, and shows a row inserted with SQL
// within a second, pushed over a subscription. Screenshots are artefacts:
// go test -artifacts -outputdir DIR keeps them under DIR.
package examples_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/browsertest"
	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(gatewaytest.MainWithKCK(m, "examples", &binary)) }

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// The author whose titles the apps show (their ?author=).
const author = 3

// Every folder of examples/ with a package.json is an example app.
func TestExamplesInChromium(t *testing.T) {
	apps, err := filepath.Glob(filepath.Join(here(), "*", "package.json"))
	require.NoError(t, err)
	require.NotEmpty(t, apps)
	for _, app := range apps {
		name := filepath.Base(filepath.Dir(app))
		t.Run(name, func(t *testing.T) {
			dist := buildExample(t, name)
			app := httptest.NewServer(http.FileServer(http.Dir(dist)))
			t.Cleanup(app.Close)
			db := pgtest.Database(t)
			// An app that ships a trusted documents manifest (GraphQL Code
			// Generator's, written by its build) gets a gateway that runs
			// nothing else.
			manifest := filepath.Join(here(), name, "src", "gql", "persisted-documents.json")
			var extra []string
			if _, err := os.Stat(manifest); err == nil {
				extra = []string{"--trusted-documents", manifest, "--trusted-documents-mode", "enforce"}
			}
			gw := startGateway(t, db, app.URL, extra...)
			insert := insertServer(t, db)
			shots := t.ArtifactDir()
			page := app.URL + "/index.html?" + url.Values{"gateway": {gw}, "author": {fmt.Sprint(author)}}.Encode()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			browsertest.Run(t, ctx, "example.mjs", page, insert, shots)
			t.Logf("screenshots in %s", shots)
			if extra != nil {
				browsertest.Run(t, ctx, "trusted-console.mjs", page)
			}
		})
	}
}

// buildExample runs examples/build.sh (npm ci and the build, skipped when
// the build is newer than the sources) and returns the built files' folder.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(here(), "build.sh"), name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("build.sh %s (%s):\n%s", name, time.Since(start).Round(time.Millisecond), stderr.String())
	require.NoError(t, err)
	dist := strings.TrimSpace(string(out))
	require.FileExists(t, filepath.Join(dist, "index.html"))
	return dist
}

// startGateway loads the demo tables into db and starts a gateway process
// serving them, allowing the origin the app is served from. Its log goes to
// the test's artefacts.
func startGateway(t *testing.T, db, origin string, extra ...string) string {
	t.Helper()
	out, err := exec.Command(binary, "demo", "load", "--postgres-url", db).CombinedOutput()
	require.NoError(t, err, "demo load: %s", out)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logFile, err := os.Create(filepath.Join(t.ArtifactDir(), "gateway.log"))
	require.NoError(t, err)
	cmd := exec.Command(binary, append([]string{"serve", "--addr", addr, "--data-dir", t.TempDir(),
		"--postgres-url", db, "--cors-origins", origin, "--log-level", "warn"}, extra...)...)
	// The embedded store: whatever make test exports for Cassandra.
	cmd.Env = append(os.Environ(), "KCK_STORE=embedded", "KCK_DRAIN_DELAY=0s")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	base := "http://" + addr
	gatewaytest.WaitReady(t, nil, base)
	return base
}

// insertServer answers POST / by inserting a title (the body) for author
// in db with SQL, as anyone but the gateway would: the change reaches the
// gateway through Postgres' notifications only. It answers once the row is
// committed.
func insertServer(t *testing.T, db string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		title, err := io.ReadAll(io.LimitReader(r.Body, 1024))
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "POST a title", http.StatusBadRequest)
			return
		}
		conn, err := pgx.Connect(r.Context(), db)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(r.Context(), `INSERT INTO titles (author_id, title, year) VALUES ($1, $2, 2098)`, author, string(title)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// The schema examples/react-codegen generates its typed documents against
// is the one `kck schema` prints: regenerate it with
// go run . schema > examples/react-codegen/schema.graphql
func TestCodegenSchemaIsCurrent(t *testing.T) {
	out, err := exec.Command(binary, "schema").Output()
	require.NoError(t, err)
	committed, err := os.ReadFile(filepath.Join(here(), "react-codegen", "schema.graphql"))
	require.NoError(t, err)
	require.Equal(t, string(out), string(committed), "run: go run . schema > examples/react-codegen/schema.graphql")
}
