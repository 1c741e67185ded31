package graph_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/primers"
)

const addTitle = `mutation($a: Int!, $t: String!, $y: Int!) {
	addTitle(authorId: $a, title: $t, year: $y) {
		__typename
		title { __typename id authorId title year }
		titleList { __typename id title year }
		authorStats { __typename authorId titleCount lastYear }
		products { __typename key version computedAt stale }
	}
}`

type addTitleData struct {
	AddTitle struct {
		Typename string `json:"__typename"`
		Title    struct {
			Typename string `json:"__typename"`
			demo.Title
		}
		TitleList   []demo.Title
		AuthorStats demo.AuthorStats
		Products    []freshness
	}
}

// The typed mutation runs the updater like update(name, input) and answers
// with the affected products as typed objects, refreshed: what a client
// cache normalises (Title by id, AuthorStats by authorId, Product by key).
func TestTypedMutationReturnsTheAffectedProductsTyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.ds.TitlesBy(42)
	var stats0 struct{ AuthorStats demo.AuthorStats }
	e.ok(t, `{ authorStats(authorId: 42) { titleCount } }`, nil, &stats0)

	var got addTitleData
	r := e.ok(t, addTitle, map[string]any{"a": 42, "t": "  A Typed Book ", "y": 2100}, &got)
	p := got.AddTitle
	assert.Equal(t, "AddTitlePayload", p.Typename)
	assert.Equal(t, "Title", p.Title.Typename)
	assert.Equal(t, demo.Title{ID: p.Title.ID, AuthorID: 42, Title: "A Typed Book", Year: 2100}, p.Title.Title, "the updater's result, typed")
	require.Len(t, p.TitleList, len(before)+1, "read-your-writes: the list has the new title")
	assert.Equal(t, p.Title.ID, p.TitleList[len(p.TitleList)-1].ID, "the newest year sorts last")
	assert.Equal(t, e.ds.TitlesBy(42)[len(before)].ID, p.Title.ID)
	assert.Equal(t, int64(42), p.AuthorStats.AuthorID)
	assert.Equal(t, stats0.AuthorStats.TitleCount+1, p.AuthorStats.TitleCount, "the dependent product is fresh too")
	assert.Equal(t, int64(2100), p.AuthorStats.LastYear)

	// products lists the affected keys with the versions the typed fields
	// were read at, and extensions.kck says the same.
	require.Len(t, p.Products, 2)
	seen := map[string]string{}
	for _, f := range r.Extensions.KCK.Products {
		seen[f.Key] = f.Version
	}
	for _, f := range p.Products {
		assert.NotEmpty(t, f.Version)
		assert.Equal(t, seen[f.Key], f.Version, f.Key)
	}
	assert.ElementsMatch(t, []string{"title_list/42", "author_stats/42"}, []string{p.Products[0].Key, p.Products[1].Key})

	// A later query sees the same list: no refetch needed, none different.
	var q struct{ TitleList []demo.Title }
	e.ok(t, `{ titleList(authorId: 42) { id title year } }`, nil, &q)
	assert.Equal(t, p.TitleList, q.TitleList)

	// The generic update still works beside it, on the same updater.
	var u struct {
		Update struct{ Products []freshness }
	}
	e.ok(t, `mutation { update(name: "add_title", input: {authorId: 42, title: "Generic", year: 2000}) { products { key version } } }`, nil, &u)
	assert.Len(t, u.Update.Products, 2)
	assert.Len(t, e.ds.TitlesBy(42), len(before)+2)
}

func TestTypedMutationRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := len(e.ds.TitlesBy(7))
	for _, tc := range []struct {
		name string
		vars map[string]any
	}{
		{"year out of range", map[string]any{"a": 7, "t": "x", "y": 99999}},
		{"empty title", map[string]any{"a": 7, "t": "  ", "y": 2000}},
		{"no such author", map[string]any{"a": 100000, "t": "x", "y": 2000}},
	} {
		r := e.query(t, addTitle, tc.vars)
		assert.Equal(t, []string{"BAD_USER_INPUT"}, r.Codes(), tc.name)
		assert.JSONEq(t, "null", string(r.Data), tc.name)
	}
	// Arguments GraphQL itself refuses: missing, of the wrong type.
	for _, q := range []string{
		`mutation { addTitle(authorId: 7, title: "x") { title { id } } }`,
		`mutation { addTitle(authorId: "seven", title: "x", year: 2000) { title { id } } }`,
	} {
		r := e.query(t, q, nil)
		assert.Equal(t, []string{"GRAPHQL_VALIDATION_FAILED"}, r.Codes(), q)
	}
	assert.Len(t, e.ds.TitlesBy(7), n, "nothing written")
}

// At start-up a typed mutation whose updater is not registered is refused,
// as a @product field whose product is not.
func TestTypedMutationNeedsItsUpdater(t *testing.T) {
	t.Parallel()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	full := primers.NewRegistry()
	require.NoError(t, demo.Register(full, demo.NewDataset()))
	reg := primers.NewRegistry()
	for _, p := range full.Products() { // the products, not the updater
		require.NoError(t, reg.Register(*p))
	}
	c, err := cache.New(cache.Options{Registry: reg, Store: store})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = gqlhttp.NewHandler(gqlhttp.Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Mutation.addTitle: bound to updater "add_title", which is not registered`)
}
