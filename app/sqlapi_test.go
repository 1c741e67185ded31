package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/internal/logtest"
	"github.com/kck-go/kck/internal/pgtest"
)

const books = `CREATE TABLE books (id serial PRIMARY KEY, shelf_id int NOT NULL, title text NOT NULL);
INSERT INTO books (shelf_id, title) VALUES (7, 'Dune'), (7, 'Emma'), (8, 'Ulysses');`

const shelfBooks = `-- kck:product shelf_books(shelf_id int)
-- kck:auth public
-- kck:source books shelf_id=shelf_id
SELECT id, shelf_id, title FROM books WHERE shelf_id = :shelf_id ORDER BY id
`

type gw struct {
	t    *testing.T
	a    *app.App
	base string
	dir  string
	logs *logtest.Capture
}

// openGateway opens a gateway on the embedded store whose SQL products are
// the files of a folder, watched every few milliseconds.
func openGateway(t *testing.T, files map[string]string) *gw {
	t.Helper()
	url := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, books)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	logs := &logtest.Capture{}
	cfg := app.Defaults()
	cfg.Addr, cfg.DataDir, cfg.PostgresURL, cfg.SQLDir, cfg.SQLWatch = "127.0.0.1:0", t.TempDir(), url, dir, 10*time.Millisecond
	cfg.Migrate, cfg.Scheduler, cfg.Admin, cfg.Logger = true, false, false, slog.New(logs)
	cfg.DrainDelay = 0
	a, err := app.Open(context.Background(), cfg)
	require.NoError(t, err)
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-done; a.Close() })
	return &gw{t: t, a: a, base: "http://" + a.Addr(), dir: dir, logs: logs}
}

type result struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (g *gw) query(q string) result {
	g.t.Helper()
	body, _ := json.Marshal(map[string]string{"query": q})
	resp, err := http.Post(g.base+"/graphql", "application/json", strings.NewReader(string(body)))
	require.NoError(g.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(g.t, err)
	var r result
	require.NoError(g.t, json.Unmarshal(b, &r), string(b))
	return r
}

func (g *gw) write(name, body string) {
	g.t.Helper()
	// Written aside and renamed: the watcher never reads half a file.
	tmp := filepath.Join(g.dir, "."+name+".tmp")
	require.NoError(g.t, os.WriteFile(tmp, []byte(body), 0o644))
	require.NoError(g.t, os.Rename(tmp, filepath.Join(g.dir, name)))
}

// until polls q until check accepts its answer (a reload is asynchronous).
func (g *gw) until(q string, check func(result) bool) result {
	g.t.Helper()
	var r result
	require.Eventually(g.t, func() bool { r = g.query(q); return check(r) }, time.Minute, 10*time.Millisecond, "last answer: %+v", r)
	return r
}

// The folder is the API: a product added, changed or removed is served (or
// not) without a restart; a changed statement's values are computed again;
// a bad file is refused with its file and line while the rest serves on.
func TestReloadSQLDir(t *testing.T) {
	t.Parallel()
	g := openGateway(t, map[string]string{"shelf_books.sql": shelfBooks})
	r := g.query(`{ shelfBooks(shelfId: 7) { id shelfId title } }`)
	require.Empty(t, r.Errors)
	assert.JSONEq(t, `[{"id":1,"shelfId":7,"title":"Dune"},{"id":2,"shelfId":7,"title":"Emma"}]`, string(r.Data["shelfBooks"]))

	// The statement changes: the field's type follows, and the value kept
	// in the cache (computed by the old statement) is not served.
	g.write("shelf_books.sql", strings.Replace(shelfBooks, "SELECT id, shelf_id, title", "SELECT id, upper(title) AS title, length(title) AS letters", 1))
	r = g.until(`{ shelfBooks(shelfId: 7) { title letters } }`, func(r result) bool { return len(r.Errors) == 0 })
	assert.JSONEq(t, `[{"title":"DUNE","letters":4},{"title":"EMMA","letters":4}]`, string(r.Data["shelfBooks"]))
	assert.Equal(t, 1, g.logs.Count("SQL products reloaded"), "changed=[shelf_books]")

	// A bad file: refused, with its file and line, and what serves stays.
	g.write("broken.sql", "-- kck:product broken()\n-- kck:auth public\nSELECT id,\n  nope\nFROM books")
	require.Eventually(t, func() bool { return g.logs.Count("SQL products not reloaded") > 0 }, time.Minute, 10*time.Millisecond)
	assert.Equal(t, 1, g.logs.Count(`broken.sql:4: the statement does not prepare: column \"nope\" does not exist`)+
		g.logs.Count(`broken.sql:4: the statement does not prepare: column "nope" does not exist`), "the file and line of the error")
	r = g.query(`{ shelfBooks(shelfId: 7) { title } }`)
	require.Empty(t, r.Errors)
	r = g.query(`{ broken { id } }`)
	require.NotEmpty(t, r.Errors, "the bad product is not served")

	// Fixed, and another product added: both served, no restart.
	g.write("broken.sql", "-- kck:product broken()\n-- kck:auth public\n-- kck:result value\nSELECT count(*) FROM books")
	g.write("titles.sql", "-- kck:product titles()\n-- kck:auth public\n-- kck:filter $[*].title\nSELECT title FROM books ORDER BY id")
	r = g.until(`{ broken titles }`, func(r result) bool { return len(r.Errors) == 0 })
	assert.JSONEq(t, `"3"`, string(r.Data["broken"]), "count(*) is an int8: a BigInt, as a string")
	assert.JSONEq(t, `["Dune","Emma","Ulysses"]`, string(r.Data["titles"]))

	// Removed: no longer in the schema.
	require.NoError(t, os.Remove(filepath.Join(g.dir, "titles.sql")))
	g.until(`{ titles }`, func(r result) bool {
		return len(r.Errors) > 0 && strings.Contains(r.Errors[0].Message, `Cannot query field "titles"`)
	})
	assert.Empty(t, g.query(`{ broken }`).Errors)
}

// ReloadSQL refuses what does not fit the rest: a product whose name a Go
// product (or another file) has, a kck:type naming a compiled type whose
// fields the columns do not give.
func TestReloadSQLRefusals(t *testing.T) {
	t.Parallel()
	g := openGateway(t, map[string]string{"shelf_books.sql": shelfBooks})
	for _, tc := range []struct{ name, body, want string }{
		{"type", "-- kck:product odd(shelf_id int)\n-- kck:type Product\nSELECT id FROM books WHERE shelf_id = :shelf_id",
			"type.sql:2: type Product (in the schema already) has a field key, which no column gives"},
		{"field", "-- kck:product product(id int)\nSELECT 1 AS x",
			"field.sql:1: Query.product is in the compiled schema already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.write(tc.name+".sql", tc.body)
			_, err := g.a.ReloadSQL(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			require.NoError(t, os.Remove(filepath.Join(g.dir, tc.name+".sql")))
			assert.Empty(t, g.query(`{ shelfBooks(shelfId: 7) { id } }`).Errors)
		})
	}
}
