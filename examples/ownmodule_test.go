package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/pgtest"
)

// TestOwnModule builds examples/own-module (a separate Go module on top of
// KCK, with its own schema, SQL product and Go product) and runs it against
// a fresh PostgreSQL: both products are served over /graphql and /fetch,
// and a row inserted with SQL reaches both, the SQL product through the
// change feed and the Go product, built on it, through its dependency.
func TestOwnModule(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "titles")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(here(), "own-module")
	start := time.Now()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build in examples/own-module:\n%s", out)
	t.Logf("built examples/own-module in %s", time.Since(start).Round(time.Millisecond))

	// titles schema: the module's schema, its subscription fields too.
	sdl, err := exec.Command(bin, "schema").Output()
	require.NoError(t, err)
	for _, want := range []string{"  shelfBooks(shelfId: Int!): [Book!]", "type Subscription {", "type ShelfStats {"} {
		require.Contains(t, strings.Split(string(sdl), "\n"), want, "titles schema:\n%s", sdl)
	}

	db := pgtest.Database(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logFile, err := os.Create(filepath.Join(t.ArtifactDir(), "titles.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--addr", addr, "--data-dir", t.TempDir(), "--postgres-url", db, "--log-level", "warn")
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

	// The module created its table at start; fill it as any other writer would.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	insert := func(title string, pages int) {
		_, err := conn.Exec(ctx, `INSERT INTO books (shelf_id, title, pages) VALUES (1, $1, $2)`, title, pages)
		require.NoError(t, err)
	}
	insert("Dune", 412)
	insert("Emma", 474)

	type answer struct {
		Data struct {
			ShelfBooks []struct {
				Title string `json:"title"`
				Pages int    `json:"pages"`
			} `json:"shelfBooks"`
			ShelfStats *struct {
				Books        int    `json:"books"`
				Pages        int    `json:"pages"`
				LongestTitle string `json:"longestTitle"`
			} `json:"shelfStats"`
		} `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	query := func() answer {
		body, _ := json.Marshal(map[string]string{"query": `{ shelfBooks(shelfId: 1) { title pages } shelfStats(shelfId: 1) { books pages longestTitle } }`})
		resp, err := http.Post(base+"/graphql", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
		var a answer
		require.NoError(t, json.Unmarshal(raw, &a), string(raw))
		require.Empty(t, a.Errors, string(raw))
		return a
	}
	// The rows reach the products through the change feed: the first read
	// may come between the refresh after the first INSERT and the one after
	// the second (CI saw one book).
	var a answer
	require.Eventually(t, func() bool {
		a = query()
		return len(a.Data.ShelfBooks) == 2 && a.Data.ShelfStats != nil && a.Data.ShelfStats.Books == 2
	}, 2*time.Minute, 50*time.Millisecond, "the two inserted rows never reached both products")
	require.Equal(t, "Dune", a.Data.ShelfBooks[0].Title)
	require.Equal(t, 474, a.Data.ShelfBooks[1].Pages)
	require.NotNil(t, a.Data.ShelfStats)
	require.Equal(t, 2, a.Data.ShelfStats.Books)
	require.Equal(t, 886, a.Data.ShelfStats.Pages)

	// KCK's other endpoints serve the module's products too.
	resp, err := http.Get(base + "/fetch?key=shelf_stats/1")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	require.Contains(t, string(raw), `"key":"shelf_stats/1"`)

	// A row changed by someone else: the change feed refreshes shelf_books/1,
	// and shelf_stats/1, which read it, follows.
	insert("The Left Hand of Darkness", 304)
	require.Eventually(t, func() bool {
		a := query()
		return len(a.Data.ShelfBooks) == 3 && a.Data.ShelfStats != nil && a.Data.ShelfStats.Books == 3 &&
			a.Data.ShelfStats.Pages == 1190 && a.Data.ShelfStats.LongestTitle == "The Left Hand of Darkness"
	}, 2*time.Minute, 50*time.Millisecond, "the inserted row never reached both products")
}
