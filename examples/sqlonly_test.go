package examples_test

import (
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

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/pgtest"
)

// TestSQLOnly is KCK tried as a SQL person would (issue 28): a fresh
// database, the table of examples/sql-only/schema.sql, a folder holding a
// product and an updater, and the kck binary (built once by TestMain: no Go
// toolchain from here on). The typed field answers, the typed mutation
// writes and answers with the new row and the shelf, a subscription is
// pushed the row an INSERT made with SQL, and a second file copied into the
// folder is served without a restart.
func TestSQLOnly(t *testing.T) {
	t.Parallel()
	start := time.Now()
	db := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	example := loadSQLOnlySchema(ctx, t, db)
	conn, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(example, "*.sql"))
	require.NoError(t, err)
	for _, f := range files {
		copyFile(t, f, filepath.Join(dir, filepath.Base(f)))
	}
	base, logPath := startKCK(t, "--postgres-url", db, "--sql-dir", dir, "--migrate", "--sql-watch", "50ms")

	// The typed field, from the statement's columns.
	r := post(t, base, `{ shelfBooks(shelfId: 1) { __typename id shelfId title pages } }`, nil)
	assert.JSONEq(t, `{"shelfBooks":[{"__typename":"Book","id":1,"shelfId":1,"title":"Dune","pages":412},`+
		`{"__typename":"Book","id":2,"shelfId":1,"title":"Emma","pages":474}]}`, string(r.Data))

	// The subscription, then the typed mutation: its answer and a push.
	ws := subscribe(t, base, `subscription { shelfBooks(shelfId: 1) { title } }`)
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(ws.next(t).Data))
	r = post(t, base, `mutation($t: String!) { addBook(shelfId: 1, title: $t) { result { id title pages added } shelfBooks { title } products { key } } }`,
		map[string]any{"t": "  Middlemarch "})
	var added struct {
		AddBook struct {
			Result struct {
				ID    int    `json:"id"`
				Title string `json:"title"`
				Pages *int   `json:"pages"`
				Added string `json:"added"`
			} `json:"result"`
			ShelfBooks []struct{ Title string } `json:"shelfBooks"`
			Products   []struct{ Key string }   `json:"products"`
		} `json:"addBook"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &added))
	assert.Equal(t, "Middlemarch", added.AddBook.Result.Title)
	assert.Nil(t, added.AddBook.Result.Pages)
	_, err = time.Parse(time.RFC3339Nano, added.AddBook.Result.Added)
	assert.NoError(t, err, "a timestamptz is a Time")
	assert.Len(t, added.AddBook.ShelfBooks, 3, "read-your-writes")
	assert.Equal(t, "shelf_books/1", added.AddBook.Products[0].Key)
	ws.until(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"},{"title":"Middlemarch"}]}`)

	// A row written with SQL, by anyone: pushed through the change feed.
	_, err = conn.Exec(ctx, `INSERT INTO books (shelf_id, title, pages) VALUES (1, 'Persuasion', 249)`)
	require.NoError(t, err)
	ws.until(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"},{"title":"Middlemarch"},{"title":"Persuasion"}]}`)

	// A second product, copied in while the gateway runs.
	copyFile(t, filepath.Join(example, "later", "shelf_stats.sql"), filepath.Join(dir, "shelf_stats.sql"))
	var stats reply
	require.Eventually(t, func() bool {
		stats = tryPost(t, base, `{ shelfStats(shelfId: 1) { books pages } }`)
		return len(stats.Errors) == 0
	}, time.Minute, 20*time.Millisecond, "last: %+v", stats)
	assert.JSONEq(t, `{"shelfStats":{"books":4,"pages":1135}}`, string(stats.Data))

	logs, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.NotContains(t, string(logs), "level=ERROR")
	assert.Contains(t, string(logs), "SQL products reloaded")
	t.Logf("the SQL person's afternoon took %s (after the build)", time.Since(start).Round(time.Millisecond))
}

// TestSQLOnlySIGHUP: with the folder not watched (--sql-watch 0), a file
// added is served once the gateway is sent SIGHUP, not before.
func TestSQLOnlySIGHUP(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	example := loadSQLOnlySchema(ctx, t, db)
	dir := t.TempDir()
	copyFile(t, filepath.Join(example, "shelf_books.sql"), filepath.Join(dir, "shelf_books.sql"))
	base, _, cmd := startKCKCmd(t, "--postgres-url", db, "--sql-dir", dir, "--sql-watch", "0")
	copyFile(t, filepath.Join(example, "later", "shelf_stats.sql"), filepath.Join(dir, "shelf_stats.sql"))
	q := `{ shelfStats(shelfId: 2) { books pages } }`
	require.NotEmpty(t, tryPost(t, base, q).Errors, "not watched: not served before SIGHUP")
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	var r reply
	require.Eventually(t, func() bool { r = tryPost(t, base, q); return len(r.Errors) == 0 }, time.Minute, 20*time.Millisecond, "last: %+v", r)
	assert.JSONEq(t, `{"shelfStats":{"books":1,"pages":730}}`, string(r.Data))
}

// startKCK runs the kck binary with args on a free port until the test
// ends, and returns its URL and the path of its log.
func startKCK(t *testing.T, args ...string) (string, string) {
	t.Helper()
	base, logPath, _ := startKCKCmd(t, args...)
	return base, logPath
}

// startKCKCmd is startKCK, with the process.
func startKCKCmd(t *testing.T, args ...string) (string, string, *exec.Cmd) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logPath := filepath.Join(t.ArtifactDir(), "kck.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(binary, append([]string{"serve", "--addr", addr, "--data-dir", t.TempDir()}, args...)...)
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
	return base, logPath, cmd
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	// Written aside, then renamed: the folder never holds half a file.
	require.NoError(t, os.WriteFile(to+".tmp", b, 0o644))
	require.NoError(t, os.Rename(to+".tmp", to))
}

type reply struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
	Extensions json.RawMessage `json:"extensions"`
}

func tryPost(t *testing.T, base, query string) reply {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r reply
	require.NoError(t, json.Unmarshal(b, &r), string(b))
	return r
}

func post(t *testing.T, base, query string, vars map[string]any) reply {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r reply
	require.NoError(t, json.Unmarshal(b, &r), string(b))
	require.Empty(t, r.Errors, string(b))
	return r
}

type sub struct {
	c   *websocket.Conn
	ctx context.Context
}

// subscribe opens a graphql-transport-ws connection and starts query.
func subscribe(t *testing.T, base, query string) *sub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	s := &sub{c: c, ctx: ctx}
	s.send(t, map[string]any{"type": "connection_init"})
	s.send(t, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}})
	return s
}

func (s *sub) send(t *testing.T, m any) {
	t.Helper()
	b, _ := json.Marshal(m)
	require.NoError(t, s.c.Write(s.ctx, websocket.MessageText, b))
}

// until reads results until one's data is want (the updater's refresh and
// the change feed's may each push a version of the same rows).
func (s *sub) until(t *testing.T, want string) {
	t.Helper()
	for {
		got := s.next(t)
		var a, b any
		require.NoError(t, json.Unmarshal(got.Data, &a))
		require.NoError(t, json.Unmarshal([]byte(want), &b))
		if assert.ObjectsAreEqual(a, b) {
			return
		}
	}
}

// next is the subscription's next result.
func (s *sub) next(t *testing.T) reply {
	t.Helper()
	for {
		_, b, err := s.c.Read(s.ctx)
		require.NoError(t, err)
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(b, &m))
		switch m.Type {
		case "ping":
			s.send(t, map[string]any{"type": "pong"})
		case "next":
			var r reply
			require.NoError(t, json.Unmarshal(m.Payload, &r))
			require.Empty(t, r.Errors, string(m.Payload))
			return r
		case "error", "complete":
			t.Fatalf("subscription: %s %s", m.Type, m.Payload)
		}
	}
}

// TestSQLOnlyCodegen: GraphQL Code Generator (react-codegen's, its client
// preset) makes typed documents from what kck schema prints for the
// folder: the SQL products' types are in it, without a schema written by
// hand.
func TestSQLOnlyCodegen(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	example := loadSQLOnlySchema(ctx, t, db)

	out := t.TempDir()
	sdl, err := exec.CommandContext(ctx, binary, "schema", "--postgres-url", db, "--sql-dir", example).Output()
	require.NoError(t, err)
	for _, want := range []string{"  shelfBooks(shelfId: Int!): [Book!]", "  addBook(shelfId: Int!, title: String!, pages: Int): AddBookPayload!", "type Book {", "  added: Time!"} {
		require.Contains(t, strings.Split(string(sdl), "\n"), want, "kck schema:\n%s", sdl)
	}
	require.NoError(t, os.WriteFile(filepath.Join(out, "schema.graphql"), sdl, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(out, "shelf.graphql"), []byte(`query Shelf($shelf: Int!) { shelfBooks(shelfId: $shelf) { id title pages added } }
mutation Add($shelf: Int!, $title: String!) { addBook(shelfId: $shelf, title: $title) { result { id } shelfBooks { id title } } }
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(out, "codegen.yml"), []byte("schema: "+filepath.Join(out, "schema.graphql")+
		"\ndocuments: "+filepath.Join(out, "shelf.graphql")+"\ngenerates:\n  "+filepath.Join(out, "gql")+"/:\n    preset: client\n"), 0o644))

	// react-codegen's own Code Generator, from its lockfile.
	app := filepath.Join(here(), "react-codegen")
	npm := exec.CommandContext(ctx, "bash", "-c", `exec 9>"${TMPDIR:-/tmp}/kck-examples-react-codegen.lock"; flock 9
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then npm ci --no-audit --no-fund --loglevel=error; fi`)
	npm.Dir = app
	b, err := npm.CombinedOutput()
	require.NoError(t, err, "npm ci in react-codegen:\n%s", b)
	gen := exec.CommandContext(ctx, filepath.Join(app, "node_modules", ".bin", "graphql-codegen"), "--config", filepath.Join(out, "codegen.yml"))
	gen.Dir = app
	b, err = gen.CombinedOutput()
	require.NoError(t, err, "graphql-codegen:\n%s", b)
	ts, err := os.ReadFile(filepath.Join(out, "gql", "graphql.ts"))
	require.NoError(t, err)
	for _, want := range []string{
		"export type ShelfQuery = { shelfBooks: Array<{ id: number, title: string, pages: number | null, added: unknown }> | null };",
		"export type AddMutation = { addBook: { result: { id: number } | null, shelfBooks: Array<{ id: number, title: string }> | null } };",
		"export type AddMutationVariables = Exact<{\n  shelf: number;\n  title: string;\n}>;",
	} {
		assert.Contains(t, string(ts), want)
	}
}

// loadSQLOnlySchema creates examples/sql-only's tables (schema.sql) in db
// and returns the example's folder.
func loadSQLOnlySchema(ctx context.Context, t *testing.T, db string) string {
	t.Helper()
	example := filepath.Join(here(), "sql-only")
	schema, err := os.ReadFile(filepath.Join(example, "schema.sql"))
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, string(schema))
	require.NoError(t, err)
	return example
}
