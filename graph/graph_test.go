package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/internal/graphqltest"
	"github.com/kck-go/kck/primers"
)

type (
	freshness = graphqltest.Read
	response  = graphqltest.Response
)

type env struct {
	h       http.Handler
	cache   *cache.Cache
	ds      *demo.Dataset
	flakyOK atomic.Bool
	runs    atomic.Int64 // runs of the "counted" product
}

// newEnv is the real GraphQL handler (gateway/gqlhttp: the resolvers are
// tested as clients reach them) over a real cache on the in-memory
// store, with the demo products and a few test products.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{ds: demo.NewDataset()}
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, e.ds))
	n := []primers.Param{{Name: "n", Kind: primers.Int}}
	reg.MustRegister(
		primers.Product{Name: "flaky", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			if !e.flakyOK.Load() {
				return 0, errors.New("database is down")
			}
			return n, nil
		})},
		primers.Product{Name: "boom", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			var xs []int64
			return xs[n], nil
		})},
		primers.Product{Name: "counted", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			return n + 1000*e.runs.Add(1), nil
		})},
	)
	var err error
	e.cache, err = cache.New(cache.Options{Registry: reg, Store: store})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	e.h, err = gqlhttp.NewHandler(gqlhttp.Options{Cache: e.cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return e
}

func (e *env) query(t *testing.T, query string, vars map[string]any) response {
	t.Helper()
	return graphqltest.Query(t, e.h, query, vars)
}

func (e *env) ok(t *testing.T, query string, vars map[string]any, into any) response {
	t.Helper()
	return graphqltest.OK(t, e.h, query, vars, into)
}

func TestTypedProductFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got struct {
		TitleList   []demo.Title
		Author      demo.Author
		AuthorStats demo.AuthorStats
		TopAuthors  []demo.TopAuthor
	}
	r := e.ok(t, `query($id: Int!) {
		titleList(authorId: $id) { id authorId title year }
		author(authorId: $id) { id name }
		authorStats(authorId: $id) { authorId name titleCount firstYear lastYear totalSales }
		topAuthors(n: 5) { authorId name totalSales }
	}`, map[string]any{"id": 42}, &got)

	want := e.ds.TitlesBy(42)
	assert.Equal(t, want, got.TitleList)
	a, _ := e.ds.Author(42)
	assert.Equal(t, a, got.Author)
	ids := make([]int64, len(want))
	for i, ti := range want {
		ids[i] = ti.ID
	}
	assert.Equal(t, demo.AuthorStats{AuthorID: 42, Name: a.Name, TitleCount: int64(len(want)),
		FirstYear: want[0].Year, LastYear: want[len(want)-1].Year, TotalSales: e.ds.SalesOf(ids...)}, got.AuthorStats)
	require.Len(t, got.TopAuthors, 5)
	for i := 1; i < 5; i++ {
		assert.GreaterOrEqual(t, got.TopAuthors[i-1].TotalSales, got.TopAuthors[i].TotalSales)
	}

	// Every product served is listed with its freshness.
	keys := map[string]freshness{}
	for _, p := range r.Extensions.KCK.Products {
		keys[p.Key] = p
		assert.NotEmpty(t, p.Version)
		assert.NotEmpty(t, p.ComputedAt)
		assert.False(t, p.Stale)
	}
	for _, k := range []string{"title_list/42", "author/42", "author_stats/42", "top_authors/5"} {
		assert.Contains(t, keys, k)
	}
}

func TestSecondQueryIsAHit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var first, second struct{ Product struct{ Value int64 } }
	r1 := e.ok(t, `{ product(key: "counted/7") { value } }`, nil, &first)
	r2 := e.ok(t, `{ product(key: "counted/7") { value } }`, nil, &second)
	assert.Equal(t, int64(1), e.runs.Load(), "the primer ran once")
	assert.Equal(t, int64(1007), second.Product.Value)
	assert.Equal(t, r1.Extensions.KCK.Products, r2.Extensions.KCK.Products, "same version")
}

func TestProductByKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got struct {
		Product struct {
			Key, Version, ComputedAt string
			Stale                    bool
			Value                    []demo.Title
		}
	}
	e.ok(t, `{ product(key: "title_list/042") { key version computedAt stale value } }`, nil, &got)
	assert.Equal(t, "title_list/42", got.Product.Key, "canonical key")
	assert.Equal(t, e.ds.TitlesBy(42), got.Product.Value)
	assert.NotEmpty(t, got.Product.Version)
	assert.False(t, got.Product.Stale)
}

func TestMutations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var before struct{ AuthorStats demo.AuthorStats }
	e.ok(t, `{ authorStats(authorId: 9) { titleCount lastYear } }`, nil, &before)

	var upd struct {
		Update struct {
			Name     string
			Result   demo.Title
			Products []struct {
				Key   string
				Value json.RawMessage
			}
		}
	}
	e.ok(t, `mutation($in: JSON!) { update(name: "add_title", input: $in) { name result products { key value } } }`,
		map[string]any{"in": map[string]any{"authorId": 9, "title": "Read Your Writes", "year": 2026}}, &upd)
	assert.Equal(t, "add_title", upd.Update.Name)
	assert.Equal(t, "Read Your Writes", upd.Update.Result.Title)
	require.Len(t, upd.Update.Products, 2)
	assert.Equal(t, "author_stats/9", upd.Update.Products[1].Key)
	var stats demo.AuthorStats
	require.NoError(t, json.Unmarshal(upd.Update.Products[1].Value, &stats))
	assert.Equal(t, before.AuthorStats.TitleCount+1, stats.TitleCount, "the mutation returns the fresh product")

	var list struct{ TitleList []demo.Title }
	e.ok(t, `{ titleList(authorId: 9) { id title year } }`, nil, &list)
	assert.Equal(t, "Read Your Writes", list.TitleList[len(list.TitleList)-1].Title)

	var v1, v2 struct{ Refresh struct{ Version string } }
	e.ok(t, `mutation { refresh(key: "counted/1") { version } }`, nil, &v1)
	e.ok(t, `mutation { refresh(key: "counted/1") { version } }`, nil, &v2)
	assert.Greater(t, v2.Refresh.Version, v1.Refresh.Version) // same length decimal strings
	assert.Equal(t, int64(2), e.runs.Load())

	var inv struct{ Invalidate bool }
	e.ok(t, `mutation { invalidate(key: "counted/1") }`, nil, &inv)
	assert.True(t, inv.Invalidate)
	var got struct{ Product struct{ Value int64 } }
	e.ok(t, `{ product(key: "counted/1") { value } }`, nil, &got)
	assert.Equal(t, int64(3001), got.Product.Value, "recomputed after invalidate")
}

func TestStaleValueServedWhenRefreshFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.flakyOK.Store(true)
	var got struct{ Product struct{ Value int64 } }
	e.ok(t, `{ product(key: "flaky/5") { value } }`, nil, &got)
	e.flakyOK.Store(false)
	r := e.query(t, `mutation { refresh(key: "flaky/5") { value } }`, nil)
	require.NotEmpty(t, r.Errors)
	assert.Equal(t, "PRIMER_FAILED", r.Codes()[0])
	e.ok(t, `{ product(key: "flaky/5") { value } }`, nil, &got)
	assert.Equal(t, int64(5), got.Product.Value, "the old value is still served")
}

func TestCheckBindings(t *testing.T) {
	t.Parallel()
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()

	full := primers.NewRegistry()
	require.NoError(t, demo.Register(full, demo.NewDataset()))
	require.NoError(t, graph.CheckBindings(schema, full))

	// A registry without top_authors.
	missing := primers.NewRegistry()
	id := []primers.Param{{Name: "author_id", Kind: primers.Int}}
	noop := primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 1, nil })
	for _, name := range []string{"title_list", "author", "author_stats"} {
		missing.MustRegister(primers.Product{Name: name, Params: id, Primer: noop})
	}
	err := graph.CheckBindings(schema, missing)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Query.topAuthors: bound to product "top_authors", which is not registered`)

	wrong := primers.NewRegistry()
	wrong.MustRegister(
		primers.Product{Name: "title_list", Params: []primers.Param{{Name: "author_id", Kind: primers.String}}, Primer: noop},
		primers.Product{Name: "author", Params: []primers.Param{{Name: "author_id", Kind: primers.Int}, {Name: "x", Kind: primers.Int}}, Primer: noop},
		primers.Product{Name: "author_stats", Params: id, Primer: noop},
		primers.Product{Name: "top_authors", Params: []primers.Param{{Name: "n", Kind: primers.Int}}, Primer: noop},
	)
	err = graph.CheckBindings(schema, wrong)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "Query.titleList: argument authorId is Int! but product \"title_list\"'s parameter author_id is string")
	assert.Contains(t, msg, `Query.author: has 1 arguments but product "author" has 2 parameters`)
	assert.True(t, strings.Count(msg, "\n") >= 1, "every mismatch is reported: %s", msg)
}
