package sqlproduct_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/scheduler"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := source.Open(ctx(t), url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func newCache(t *testing.T, reg *primers.Registry) *cache.Cache {
	t.Helper()
	s, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	c, err := cache.New(cache.Options{Registry: reg, Store: s})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"-- kck:product p(id int)\n-- kck:result table\nSELECT 1", "p.sql:2: kck:result is list, row or value"},
		{"-- kck:product p(id integer)\nSELECT 1", `p.sql:1: parameter id: unknown type "integer"`},
		{"-- kck:product p(id int)\nSELECT :nope", "p.sql:2: :nope is not a parameter of p"},
		{"-- kck:product p(id int)\n\nSELECT 1,\n  :id,\n  :nope", "p.sql:5: :nope is not a parameter of p"},
		{"-- kck:product p(id int)\n-- kck:source titles id=\nSELECT 1", `p.sql:2: kck:source titles: "id=" is not param=column`},
		{"-- kck:product p(id int)\n-- kck:source titles\nSELECT 1", "p.sql:2: kck:source titles: no column for parameter id"},
		{"-- kck:product p(id int)\n-- kck:ttl soon\nSELECT 1", `p.sql:2: kck:ttl: bad duration "soon"`},
		{"-- kck:product p(id int)\n-- kck:freshness 0s\nSELECT 1", `p.sql:2: kck:freshness: bad duration "0s"`},
		{"-- kck:product p(id int)\n-- kck:filter [0]\nSELECT 1", "must start with $"},
		{"-- kck:result row\nSELECT 1", "p.sql:1: kck:result before kck:product"},
		{"-- kck:product p(id int)\n-- kck:wat\nSELECT 1", "p.sql:2: unknown header kck:wat"},
		{"-- kck:product p(id int)\n", "p.sql:1: product p has no SQL"},
		{"-- kck:product p(id int)\n-- kck:ttl 1m\n-- kck:soft_ttl 2m\nSELECT 1", "p.sql:3: soft_ttl must be shorter than ttl"},
		{"-- kck:updater u(a int)\nSELECT 1;\nSELECT :b", "p.sql:3: :b is not an input of the updater"},
		{"-- kck:product p(id int)\n-- kck:type title\n-- kck:type Title\nSELECT 1", "p.sql:3: kck:type is given twice (line 2)"},
		{"-- kck:product p(id int)\n-- kck:type 9lives\nSELECT 1", `p.sql:2: kck:type takes a GraphQL type name`},
		{"-- kck:product p(id int)\n-- kck:type __Type\nSELECT 1", `p.sql:2: kck:type takes a GraphQL type name`},
		{"-- kck:product p(id int)\n-- kck:field year\nSELECT 1", "p.sql:2: kck:field takes a column and a GraphQL type"},
		{"-- kck:product p(id int)\n-- kck:field year [Int!\nSELECT 1", `p.sql:2: kck:field year: "[Int!" is not a GraphQL type`},
		{"-- kck:product p(id int)\n-- kck:field year Int!!\nSELECT 1", `p.sql:2: kck:field year: "Int!!" is not a GraphQL type`},
		{"-- kck:product p(id int)\n-- kck:field year Int\n-- kck:field year Float\nSELECT 1", "p.sql:3: kck:field year is given twice (line 2)"},
		{"-- kck:updater u(a int)\n-- kck:affects p/:b\nSELECT 1", "kck:affects p/:b: :b is not an input"},
		{"-- kck:updater u(a int)\n-- kck:insert\nINSERT INTO x VALUES (:a)", "need kck:key, kck:insert and kck:update"},
		{"-- kck:product p(n int 5..1)\nSELECT 1", "a range is MIN..MAX on an int"},
		{"-- kck:product p(s string)\nSELECT 1,\n'unterminated", "p.sql:3: unterminated ' quote"},
		{"-- kck:product p(id int)\n-- kck:refresh soon\nSELECT 1", `p.sql:2: kck:refresh: schedule "soon"`},
		{"-- kck:product p(id int)\n-- kck:refresh cron 61 * * * *\nSELECT 1", "p.sql:2: kck:refresh: schedule"},
		{"-- kck:product p(id int)\n-- kck:warm q/1\nSELECT 1", `p.sql:2: kck:warm: "q/1" is not a key of p`},
		{"-- kck:product p(id int)\n-- kck:warm_query SELECT id FROM t WHERE x = :id\nSELECT 1", "p.sql:2: kck:warm_query takes no parameters"},
		{"-- kck:product p(id int)\n-- kck:domain\nSELECT 1", "p.sql:2: kck:domain takes the key"},
		{"-- kck:product p(id int)\n-- kck:domain ids every\nSELECT 1", "p.sql:2: kck:domain: schedule"},
		{"-- kck:updater u(a int)\n-- kck:refresh 1m\nSELECT 1", "p.sql:2: kck:refresh is for products"},
		{"-- kck:product p(id int)\n-- kck:auth\nSELECT 1", "p.sql:2: kck:auth: want public"},
		{"-- kck:product p(id int)\n-- kck:auth public scope=r\nSELECT 1", "p.sql:2: kck:auth: public takes no"},
		{"-- kck:product p(id int)\n-- kck:auth scope=\nSELECT 1", "p.sql:2: kck:auth: empty scope"},
		{"-- kck:product p(id int)\n-- kck:auth id=sub\nSELECT 1", `p.sql:2: kck:auth: "id=sub"`},
		{"-- kck:product p(id int)\n-- kck:auth key_by=a-b\nSELECT 1", "p.sql:2: kck:auth: key_by: bad claim"},
		{"-- kck:updater u(a int)\n-- kck:auth key_by=sub\nSELECT 1", "p.sql:2: kck:auth: key_by is for products"},
		{"-- kck:updater u(a int)\n-- kck:auth bind b=sub\nSELECT :a", "p.sql:2: kck:auth: bind b: not an input"},
		{"-- kck:product p()\nSELECT :sub", ":sub is not a parameter of p"},
	} {
		_, err := sqlproduct.Load(writeFiles(t, map[string]string{"p.sql": tc.body}))
		require.Error(t, err, tc.body)
		assert.Contains(t, err.Error(), tc.want)
	}
	_, err := sqlproduct.Load(writeFiles(t, map[string]string{
		"a.sql": "-- kck:product p(id int)\nSELECT 1", "b.sql": "-- kck:product p(id int)\nSELECT 2"}))
	assert.ErrorContains(t, err, "b.sql: product p is already declared in a.sql")
}

// demoSetup loads the demo dataset into a fresh database and returns caches
// over the Go demo products and over the SQL ones.
func demoSetup(t *testing.T) (goCache, sqlCache *cache.Cache, p *pgxpool.Pool, decls *sqlproduct.Declarations, reg *primers.Registry) {
	t.Helper()
	p = pool(t, pgtest.Database(t))
	ds := demo.NewDataset()
	require.NoError(t, demo.Load(ctx(t), p, ds))
	goReg := primers.NewRegistry()
	require.NoError(t, demo.Register(goReg, ds))
	decls, err := sqlproduct.LoadFS(demo.SQL())
	require.NoError(t, err)
	reg = primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	return newCache(t, goReg), newCache(t, reg), p, decls, reg
}

func value(t *testing.T, c *cache.Cache, key string) any {
	t.Helper()
	r, err := c.Get(ctx(t), key)
	require.NoError(t, err, key)
	var v any
	require.NoError(t, json.Unmarshal(r.Value, &v))
	return v
}

func TestDemoSQLProductsEqualGoProducts(t *testing.T) {
	t.Parallel()
	goC, sqlC, _, _, _ := demoSetup(t)
	for _, p := range goC.Registry().Products() {
		q := sqlC.Registry().Product(p.Name)
		require.NotNil(t, q, p.Name)
		assert.Equal(t, []any{p.TTL, p.SoftTTL, p.FreshnessTarget}, []any{q.TTL, q.SoftTTL, q.FreshnessTarget}, "%s: expiry and freshness target", p.Name)
		assert.Equal(t, []any{p.Refresh, p.Warm, p.Domain, p.WarmKeys != nil}, []any{q.Refresh, q.Warm, q.Domain, q.WarmKeys != nil}, "%s: refresh, warming and domain", p.Name)
		assert.Equal(t, p.Auth, q.Auth, "%s: access policy", p.Name)
		assert.Equal(t, p.Params, q.Params, "%s: parameters", p.Name)
		assert.Equal(t, p.KeyParams(), q.KeyParams(), "%s: key parameters", p.Name)
	}
	assert.Equal(t, len(goC.Registry().Products()), len(sqlC.Registry().Products()))
	assert.Equal(t, goC.Registry().UpdaterNames(), sqlC.Registry().UpdaterNames())
	for _, name := range goC.Registry().UpdaterNames() {
		assert.Equal(t, goC.Registry().UpdaterAuth(name), sqlC.Registry().UpdaterAuth(name), "updater %s: access policy", name)
	}
	var keys []string
	for id := 1; id <= demo.NumAuthors; id += 7 {
		keys = append(keys, fmt.Sprintf("title_list/%d", id), fmt.Sprintf("author/%d", id), fmt.Sprintf("author_stats/%d", id))
	}
	keys = append(keys, "top_authors/1", "top_authors/10", "top_authors/100", "my_titles/5", "my_titles/300")
	for _, k := range keys {
		assert.Equal(t, value(t, goC, k), value(t, sqlC, k), k)
	}
	for _, k := range []string{"title_list/99999", "author/0", "author_stats/99999", "my_titles/99999", "my_titles/x"} {
		_, err := sqlC.Get(ctx(t), k)
		assert.ErrorIs(t, err, primers.ErrNoData, k)
	}
	// The declared range (n int 1..100) refuses these when the key is
	// parsed, before the query runs.
	for _, k := range []string{"top_authors/0", "top_authors/101"} {
		_, err := sqlC.Get(ctx(t), k)
		assert.ErrorIs(t, err, primers.ErrBadParams, k)
	}
}

func TestUpdaterCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	goC, sqlC, p, _, _ := demoSetup(t)
	before := value(t, sqlC, "author_stats/8").(map[string]any)
	out, err := sqlC.Update(ctx(t), "add_title", json.RawMessage(`{"authorId": 8, "title": "  From SQL  ", "year": 2026}`))
	require.NoError(t, err)
	var added demo.Title
	require.NoError(t, json.Unmarshal(out.Result.(json.RawMessage), &added))
	assert.Equal(t, "From SQL", added.Title)
	require.Len(t, out.Products, 2)
	assert.Equal(t, "title_list/8", out.Products[0].Key)
	after := value(t, sqlC, "author_stats/8").(map[string]any)
	assert.Equal(t, before["titleCount"].(float64)+1, after["titleCount"])
	_ = goC

	var n int
	count := func() int {
		require.NoError(t, p.QueryRow(ctx(t), `SELECT count(*) FROM titles`).Scan(&n))
		return n
	}
	titles := count()
	for _, bad := range []string{
		`{"authorId": 99999, "title": "x", "year": 2000}`, // foreign key
		`{"authorId": 8, "title": "   ", "year": 2000}`,   // check constraint
		`{"authorId": 8, "title": "x", "year": 99}`,       // declared range
		`{"authorId": 8, "title": "x"}`,                   // missing input
		`{"authorId": 8, "title": "x", "year": 2000, "isbn": "1"}`,
		`{"authorId": "8", "title": "x", "year": 2000}`,
		`[1]`,
	} {
		_, err := sqlC.Update(ctx(t), "add_title", json.RawMessage(bad))
		assert.ErrorIs(t, err, primers.ErrBadInput, bad)
		assert.NotContains(t, err.Error(), "INSERT", "no SQL in client errors")
	}
	assert.Equal(t, titles, count(), "nothing written by failed updates")

	// A two-statement updater whose second statement fails leaves nothing.
	dir := writeFiles(t, map[string]string{"two.sql": `-- kck:updater two(authorId int)
INSERT INTO titles (author_id, title, year) VALUES (:authorId, 'first half', 2000);
INSERT INTO titles (author_id, title, year) VALUES (:authorId, 'second half', 1);`})
	decls, err := sqlproduct.Load(dir)
	require.NoError(t, err)
	reg := primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	u, err := reg.Updater("two")
	require.NoError(t, err)
	_, err = u.Update(ctx(t), json.RawMessage(`{"authorId": 8}`))
	assert.ErrorIs(t, err, primers.ErrBadInput)
	assert.Equal(t, titles, count(), "the first statement was rolled back")
}

func TestShapesFiltersNullsAndInjection(t *testing.T) {
	t.Parallel()
	p := pool(t, pgtest.Database(t))
	_, err := p.Exec(ctx(t), `CREATE TABLE t (id int, name text, price numeric, born date, seen timestamptz, extra jsonb);
		INSERT INTO t VALUES (1, 'a', 1.50, '2024-01-02', '2024-01-02T03:04:05Z', '{"x": [1]}'), (2, NULL, NULL, NULL, NULL, NULL)`)
	require.NoError(t, err)
	dir := writeFiles(t, map[string]string{
		"rows.sql":   "-- kck:product rows\nSELECT * FROM t ORDER BY id",
		"one.sql":    "-- kck:product one(id int)\n-- kck:result row\nSELECT id, name FROM t WHERE id = :id",
		"count.sql":  "-- kck:product count\n-- kck:result value\nSELECT count(*) FROM t",
		"first.sql":  "-- kck:product first\n-- kck:filter $[0].name\nSELECT name FROM t ORDER BY id",
		"names.sql":  "-- kck:product names\n-- kck:filter $[*].id\nSELECT id FROM t ORDER BY id",
		"byname.sql": "-- kck:product byname(name string)\nSELECT id FROM t WHERE name = :name AND id::text <> ':not_a_param' -- :nor_this\n",
		"many.sql":   "-- kck:product many\n-- kck:result row\nSELECT id FROM t",
	})
	decls, err := sqlproduct.Load(dir)
	require.NoError(t, err)
	reg := primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	c := newCache(t, reg)
	get := func(k string) string {
		r, err := c.Get(ctx(t), k)
		require.NoError(t, err, k)
		return string(r.Value)
	}
	assert.JSONEq(t, `[{"id":1,"name":"a","price":1.50,"born":"2024-01-02","seen":"2024-01-02T03:04:05Z","extra":{"x":[1]}},
		{"id":2,"name":null,"price":null,"born":null,"seen":null,"extra":null}]`, get("rows"))
	assert.Equal(t, `{"id":1,"name":"a"}`, get("one/1"), "column order kept")
	assert.Equal(t, `2`, get("count"))
	assert.Equal(t, `"a"`, get("first"))
	assert.Equal(t, `[1,2]`, get("names"))
	assert.Equal(t, `[{"id":1}]`, get("byname/a"))
	_, err = c.Get(ctx(t), "one/3")
	assert.ErrorIs(t, err, primers.ErrNoData)
	_, err = c.Get(ctx(t), "many")
	assert.ErrorContains(t, err, "returned 2 rows")

	// A hostile value is a value, never SQL.
	_, err = c.Get(ctx(t), "byname/x'%3B DROP TABLE t%3B --")
	assert.ErrorIs(t, err, primers.ErrNoData)
	assert.Equal(t, `2`, func() string { _ = c.Invalidate(ctx(t), "count"); return get("count") }(), "table t still there")
}

func TestRules(t *testing.T) {
	t.Parallel()
	p := pool(t, pgtest.Database(t))
	files := map[string]string{
		"a.sql": "-- kck:product a(id int)\nSELECT :id::int AS id",
		"b.sql": "-- kck:product b(id int)\n-- kck:after_primes a/:id\n-- kck:after_updates u\nSELECT :id::int + 1 AS id",
		"u.sql": "-- kck:updater u(id int)\nSELECT :id::int AS id",
	}
	decls, err := sqlproduct.Load(writeFiles(t, files))
	require.NoError(t, err)
	reg := primers.NewRegistry()
	rules, err := sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"b/7"}, rules.AfterPrime("a/7"))
	assert.Empty(t, rules.AfterPrime("b/7"))
	u, _ := reg.Updater("u")
	res, err := u.Update(ctx(t), json.RawMessage(`{"id": 3}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"b/3"}, res.Affected, "after_updates")

	files["a.sql"] = "-- kck:product a(id int)\n-- kck:after_primes b/:id\nSELECT 1 AS id"
	decls, err = sqlproduct.Load(writeFiles(t, files))
	require.NoError(t, err)
	_, err = sqlproduct.Register(primers.NewRegistry(), p, decls, nil)
	assert.ErrorContains(t, err, "cycle")
}

// Committed changes to source tables reach the follower as product keys:
// a row's own products from its old and new key columns, and every known
// instance of a product built on the whole table.
func TestChangeFeed(t *testing.T) {
	t.Parallel()
	_, sqlC, p, decls, reg := demoSetup(t)
	url := p.Config().ConnString()
	require.NoError(t, source.Migrate(ctx(t), p, decls.Tables()))
	require.NoError(t, source.Migrate(ctx(t), p, decls.Tables()), "idempotent")
	value(t, sqlC, "top_authors/5") // stored, so a sales change names it

	var (
		mu  sync.Mutex
		got []string
	)
	f, err := source.NewFollower(source.FollowOptions{URL: url, Name: "test",
		Affected: func(c source.Change) []string { return decls.Affected(reg, c, sqlC.Instances) },
		Refresh: func(_ context.Context, key string, _ time.Time, done func(error)) {
			mu.Lock()
			got = append(got, key)
			mu.Unlock()
			done(nil)
		},
	})
	require.NoError(t, err)
	fctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); f.Run(fctx) }()
	defer func() { cancel(); <-stopped }()
	saw := func(keys ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range keys {
				if !slices.Contains(got, k) {
					return false
				}
			}
			return true
		}
	}
	_, err = p.Exec(ctx(t), `INSERT INTO titles (author_id, title, year) VALUES (12, 'New', 2020)`)
	require.NoError(t, err)
	require.Eventually(t, saw("title_list/12", "author_stats/12", "top_authors/5"), 2*time.Minute, 10*time.Millisecond)

	_, err = p.Exec(ctx(t), `UPDATE titles SET author_id = 13 WHERE title = 'New'`)
	require.NoError(t, err)
	require.Eventually(t, saw("title_list/13"), 2*time.Minute, 10*time.Millisecond, "old and new row")
	_, err = p.Exec(ctx(t), `UPDATE authors SET name = 'Renamed' WHERE id = 20`)
	require.NoError(t, err)
	require.Eventually(t, saw("author/20", "author_stats/20"), 2*time.Minute, 10*time.Millisecond)
}

// Reads of hot products never reach Postgres: 100,000 reads, 0 queries.
func TestHotReadsDoNotQuery(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	p, counter, err := source.OpenCounted(ctx(t), url)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, demo.Load(ctx(t), p, demo.NewDataset()))
	decls, err := sqlproduct.LoadFS(demo.SQL())
	require.NoError(t, err)
	reg := primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	c := newCache(t, reg)
	var keys []string
	for id := 1; id <= 50; id++ {
		keys = append(keys, fmt.Sprintf("title_list/%d", id), fmt.Sprintf("author_stats/%d", id))
	}
	keys = append(keys, "top_authors/10")
	for _, k := range keys {
		_, err := c.Get(ctx(t), k)
		require.NoError(t, err)
	}
	before := counter.Count()
	require.Positive(t, before, "the counter counts")
	for i := range 100_000 {
		if _, err := c.Get(ctx(t), keys[i%len(keys)]); err != nil {
			t.Fatal(err)
		}
	}
	assert.Equal(t, before, counter.Count(), "queries during 100,000 hot reads")
}

// KCK's insert and update templates: update when the input has the key.
func TestUpdaterTemplates(t *testing.T) {
	t.Parallel()
	p := pool(t, pgtest.Database(t))
	_, err := p.Exec(ctx(t), `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`)
	require.NoError(t, err)
	decls, err := sqlproduct.Load(writeFiles(t, map[string]string{"save.sql": `-- kck:updater save_note(id int?, body string)
-- kck:key id
-- kck:affects note/:id
-- kck:insert
INSERT INTO notes (body) VALUES (:body) RETURNING id, body;
-- kck:update
UPDATE notes SET body = :body WHERE id = :id RETURNING id, body;`,
		"note.sql": "-- kck:product note(id int)\n-- kck:result row\nSELECT id, body FROM notes WHERE id = :id"}))
	require.NoError(t, err)
	reg := primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	u, err := reg.Updater("save_note")
	require.NoError(t, err)
	res, err := u.Update(ctx(t), json.RawMessage(`{"body": "first"}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":1,"body":"first"}`, string(res.Result.(json.RawMessage)))
	assert.Empty(t, res.Affected, "no id in the input, no key to name")
	res, err = u.Update(ctx(t), json.RawMessage(`{"id": 1, "body": "second"}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":1,"body":"second"}`, string(res.Result.(json.RawMessage)))
	assert.Equal(t, []string{"note/1"}, res.Affected)
	var n int
	require.NoError(t, p.QueryRow(ctx(t), `SELECT count(*) FROM notes`).Scan(&n))
	assert.Equal(t, 1, n)
}

// The demo's kck:warm, kck:warm_query and kck:domain headers warm every
// author (keys from a query over Postgres), every member of title_list's
// domain and top_authors/10; kck:refresh declares the refresh job.
func TestScheduleHeaders(t *testing.T) {
	t.Parallel()
	_, sqlCache, p, _, _ := demoSetup(t)
	s, err := scheduler.New(scheduler.Options{Cache: sqlCache})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	authors := len(demo.NewDataset().Authors())
	rep, err := s.Warm(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 2*authors+1, rep.Keys)
	require.Zero(t, rep.Failed)
	for _, k := range []string{"author/1", fmt.Sprintf("author/%d", authors), "title_list/150", "top_authors/10"} {
		_, ok := sqlCache.Peek(k)
		require.True(t, ok, k)
	}
	_, ok := sqlCache.Peek("top_authors/3")
	require.False(t, ok, "only the declared keys")
	err = s.Process("refresh/top_authors", primers.Every(time.Minute), func(context.Context) error { return nil })
	require.ErrorContains(t, err, `job "refresh/top_authors" declared twice`, "kck:refresh declared the job")

	// A warm query whose rows do not fit the product's parameters is an
	// error that names the file.
	bad, err := sqlproduct.Load(writeFiles(t, map[string]string{"a.sql": "-- kck:product a(id int)\n-- kck:warm_query SELECT 'x'\nSELECT :id AS id"}))
	require.NoError(t, err)
	reg2 := primers.NewRegistry()
	_, err = sqlproduct.Register(reg2, p, bad, nil)
	require.NoError(t, err)
	s2, err := scheduler.New(scheduler.Options{Cache: newCache(t, reg2)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	_, err = s2.Warm(ctx(t))
	require.ErrorContains(t, err, "a.sql: kck:warm_query row 1")
}

// Types learns what each placeholder takes from PostgreSQL; a key or an
// updater input that its type cannot hold is refused as the caller's error
// when it is parsed or decoded, before any query, and one the type takes
// but the query cannot use is the caller's error too (never the primer's).
func TestValuesThePlaceholdersCannotTake(t *testing.T) {
	t.Parallel()
	p := pool(t, pgtest.Database(t))
	_, err := p.Exec(ctx(t), `CREATE TABLE v (small int2, big int8, f4 real, name text, n int4)`)
	require.NoError(t, err)
	dir := writeFiles(t, map[string]string{
		"small.sql": "-- kck:product small(n int)\nSELECT count(*) AS c FROM v WHERE small = :n",
		"big.sql":   "-- kck:product big(n int, x float)\nSELECT count(*) AS c FROM v WHERE big = :n OR big = :x",
		"f4.sql":    "-- kck:product f4(x float)\nSELECT count(*) AS c FROM v WHERE f4 = :x",
		"name.sql":  "-- kck:product named(s string)\nSELECT count(*) AS c FROM v WHERE name = :s",
		"cast.sql":  "-- kck:product cast(s string)\nSELECT count(*) AS c FROM v WHERE n = :s::int",
		"both.sql":  "-- kck:product both(n int)\nSELECT count(*) AS c FROM v WHERE small = :n OR big = :n",
		"put.sql":   "-- kck:updater put(n int, s string)\nINSERT INTO v (small, name) VALUES (:n, :s)",
	})
	decls, err := sqlproduct.Load(dir)
	require.NoError(t, err)
	conn, err := p.Acquire(ctx(t))
	require.NoError(t, err)
	require.Empty(t, sqlproduct.Types(ctx(t), conn.Conn(), decls))
	conn.Release()
	reg := primers.NewRegistry()
	_, err = sqlproduct.Register(reg, p, decls, nil)
	require.NoError(t, err)
	c := newCache(t, reg)

	for _, tc := range []struct {
		key  string
		want error // nil: served
	}{
		{"small/32767", nil},
		{"small/32768", primers.ErrBadParams},
		{"small/-32769", primers.ErrBadParams},
		{"both/32768", primers.ErrBadParams},
		{"big/9223372036854775807/1", nil},
		{"big/1/1.5", primers.ErrBadParams},
		{"big/1/1e19", primers.ErrBadParams},
		{"big/1/-9e18", nil},
		{"f4/3e38", nil},
		{"f4/4e38", primers.ErrBadParams},
		{"named/caf%C3%A9", nil},
		{"named/a%00b", primers.ErrBadParams},
		{"named/%FF", primers.ErrBadParams},
		{"cast/12", nil},
		{"cast/twelve", primers.ErrBadInput}, // the query's cast refuses it
	} {
		_, err := c.Get(ctx(t), tc.key)
		if tc.want == nil {
			assert.NoError(t, err, tc.key)
			continue
		}
		assert.ErrorIs(t, err, tc.want, tc.key)
		assert.NotContains(t, err.Error(), "encode", tc.key)
	}

	u, err := reg.Updater("put")
	require.NoError(t, err)
	for in, want := range map[string]error{
		`{"n": 7, "s": "ok"}`:      nil,
		`{"n": 40000, "s": "ok"}`:  primers.ErrBadInput,
		`{"n": 7, "s": "a\u0000"}`: primers.ErrBadInput,
	} {
		_, err := u.Update(ctx(t), json.RawMessage(in))
		if want == nil {
			assert.NoError(t, err, in)
		} else {
			assert.ErrorIs(t, err, want, in)
		}
	}
}
