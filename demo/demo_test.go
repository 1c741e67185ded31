package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/primers"
)

func TestDatasetIsDeterministic(t *testing.T) {
	a, b := demo.NewDataset(), demo.NewDataset()
	assert.Equal(t, a.Authors(), b.Authors())
	assert.Equal(t, a.Titles(), b.Titles())
	assert.Equal(t, a.Sales(), b.Sales())

	require.Len(t, a.Authors(), demo.NumAuthors)
	titles := a.Titles()
	assert.GreaterOrEqual(t, len(titles), 5*demo.NumAuthors)
	assert.LessOrEqual(t, len(titles), 15*demo.NumAuthors)
	perAuthor := map[int64]int{}
	for i, ti := range titles {
		assert.Equal(t, int64(i+1), ti.ID)
		assert.True(t, ti.Year >= 1950 && ti.Year <= 2025, "year %d", ti.Year)
		perAuthor[ti.AuthorID]++
	}
	for id := int64(1); id <= demo.NumAuthors; id++ {
		assert.True(t, perAuthor[id] >= 5 && perAuthor[id] <= 15, "author %d has %d titles", id, perAuthor[id])
	}
	sales := a.Sales()
	assert.Len(t, sales, 3000)
	for _, s := range sales {
		assert.Contains(t, demo.Regions, s.Region)
		assert.True(t, s.TitleID >= 1 && s.TitleID <= int64(len(titles)))
		assert.Positive(t, s.Qty)
	}
}

func TestAddTitleRejectsBadInput(t *testing.T) {
	d := demo.NewDataset()
	n := len(d.Titles())
	for _, tc := range []struct {
		author int64
		title  string
		year   int64
	}{
		{0, "x", 2000}, {demo.NumAuthors + 1, "x", 2000}, {1, "  ", 2000}, {1, "x", 999}, {1, "x", 2101},
		{1, string(make([]byte, 201)), 2000},
	} {
		_, err := d.AddTitle(tc.author, tc.title, tc.year)
		assert.ErrorIs(t, err, primers.ErrBadInput, "%+v", tc)
	}
	assert.Len(t, d.Titles(), n, "nothing added")
}

// newCache is a real cache over an embedded store with the demo products.
func newCache(t *testing.T, ds *demo.Dataset) *cache.Cache {
	t.Helper()
	c, _ := newCacheWithMetrics(t, ds)
	return c
}

func newCacheWithMetrics(t *testing.T, ds *demo.Dataset) (*cache.Cache, *prometheus.Registry) {
	t.Helper()
	metrics := prometheus.NewRegistry()
	store, err := bolt.Open(t.TempDir(), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, ds))
	c, err := cache.New(cache.Options{Registry: reg, Store: store, Registerer: metrics})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, metrics
}

// primerRuns reads kck_primer_runs_total for one product.
func primerRuns(t *testing.T, g prometheus.Gatherer, product string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "kck_primer_runs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "product" && l.GetValue() == product {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func get[T any](t *testing.T, c *cache.Cache, key string) T {
	t.Helper()
	r, err := c.Get(context.Background(), key)
	require.NoError(t, err, key)
	var v T
	require.NoError(t, json.Unmarshal(r.Value, &v))
	return v
}

// The expectations below are computed from the raw rows, independently of
// the primers' code paths.
func TestProductsMatchTheRows(t *testing.T) {
	ds := demo.NewDataset()
	c := newCache(t, ds)
	titles, sales := ds.Titles(), ds.Sales()
	sold := map[int64]int64{} // author -> qty
	for _, s := range sales {
		sold[titles[s.TitleID-1].AuthorID] += s.Qty
	}

	for _, id := range []int64{1, 42, 150, demo.NumAuthors} {
		var want []demo.Title
		for _, ti := range titles {
			if ti.AuthorID == id {
				want = append(want, ti)
			}
		}
		sort.SliceStable(want, func(i, j int) bool { return want[i].Year < want[j].Year })
		got := get[[]demo.Title](t, c, fmt.Sprintf("title_list/%d", id))
		assert.Equal(t, want, got, "title_list/%d", id)

		a := get[demo.Author](t, c, fmt.Sprintf("author/%d", id))
		assert.Equal(t, ds.Authors()[id-1], a)

		st := get[demo.AuthorStats](t, c, fmt.Sprintf("author_stats/%d", id))
		assert.Equal(t, demo.AuthorStats{
			AuthorID: id, Name: a.Name, TitleCount: int64(len(want)),
			FirstYear: want[0].Year, LastYear: want[len(want)-1].Year, TotalSales: sold[id],
		}, st)
	}

	top := get[[]demo.TopAuthor](t, c, "top_authors/10")
	require.Len(t, top, 10)
	ids := make([]int64, 0, demo.NumAuthors)
	for id := int64(1); id <= demo.NumAuthors; id++ {
		ids = append(ids, id)
	}
	slices.SortStableFunc(ids, func(a, b int64) int { return int(sold[b] - sold[a]) })
	for i, ta := range top {
		assert.Equal(t, ids[i], ta.AuthorID)
		assert.Equal(t, sold[ids[i]], ta.TotalSales)
	}
}

func TestProductErrors(t *testing.T) {
	c := newCache(t, demo.NewDataset())
	ctx := context.Background()
	for _, key := range []string{"title_list/0", "author/99999", "author_stats/-1"} {
		_, err := c.Get(ctx, key)
		assert.ErrorIs(t, err, primers.ErrNoData, key)
	}
	// n's declared range refuses these when the key is parsed, before the
	// primer (BAD_USER_INPUT either way).
	for _, key := range []string{"top_authors/0", "top_authors/101"} {
		_, err := c.Get(ctx, key)
		assert.ErrorIs(t, err, primers.ErrBadParams, key)
	}
	_, err := c.Get(ctx, "top_authors/100")
	assert.NoError(t, err)
}

func TestAddTitleRefreshesTheAffectedProducts(t *testing.T) {
	ds := demo.NewDataset()
	c := newCache(t, ds)
	ctx := context.Background()
	before := get[demo.AuthorStats](t, c, "author_stats/42")
	list := get[[]demo.Title](t, c, "title_list/42")

	out, err := c.Update(ctx, "add_title", json.RawMessage(`{"authorId":42,"title":"A Late Book","year":2026}`))
	require.NoError(t, err)
	added := out.Result.(demo.Title)
	assert.Equal(t, demo.Title{ID: int64(len(ds.Titles())), AuthorID: 42, Title: "A Late Book", Year: 2026}, added)
	require.Len(t, out.Products, 2)
	for _, p := range out.Products {
		require.NoError(t, p.Err, p.Key)
	}

	after := get[demo.AuthorStats](t, c, "author_stats/42")
	assert.Equal(t, before.TitleCount+1, after.TitleCount)
	assert.Equal(t, int64(2026), after.LastYear)
	assert.Equal(t, append(list, added), get[[]demo.Title](t, c, "title_list/42"))

	for _, bad := range []string{
		`{"authorId":42,"title":"x"}`, `{"authorId":42,"title":"x","year":2000,"extra":1}`,
		`{"authorId":"42","title":"x","year":2000}`, `[]`, `{"authorId":99999,"title":"x","year":2000}`,
		`{"authorId":42,"title":"x","year":2000} {}`,
	} {
		_, err := c.Update(ctx, "add_title", json.RawMessage(bad))
		assert.ErrorIs(t, err, primers.ErrBadInput, bad)
	}
	assert.Equal(t, after, get[demo.AuthorStats](t, c, "author_stats/42"), "bad input changed nothing")
}

// Augmenting title_list with random new titles gives the value a fresh
// computation gives (a property test over random changes).
func TestAugmentEqualsRecompute(t *testing.T) {
	ds := demo.NewDataset()
	c, metrics := newCacheWithMetrics(t, ds)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, uint64(os.Getpid())))
	authors := []int64{3, 7, 42}
	for _, a := range authors {
		get[[]demo.Title](t, c, fmt.Sprintf("title_list/%d", a)) // cached, so updates augment
	}
	for i := range 60 {
		a := authors[r.IntN(len(authors))]
		in := fmt.Sprintf(`{"authorId":%d,"title":"Change %d","year":%d}`, a, i, 1900+r.IntN(200))
		out, err := c.Update(ctx, "add_title", json.RawMessage(in))
		require.NoError(t, err)
		require.NoError(t, out.Products[0].Err)
	}
	assert.Equal(t, float64(len(authors)), primerRuns(t, metrics, "title_list"), "updates augmented, not recomputed")
	fresh := newCache(t, ds)
	for _, a := range authors {
		key := fmt.Sprintf("title_list/%d", a)
		assert.Equal(t, get[[]demo.Title](t, fresh, key), get[[]demo.Title](t, c, key), key)
	}
}

func TestJournalKeepsAddedTitlesAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "titles.jsonl")
	ds, err := demo.OpenDataset(path)
	require.NoError(t, err)
	added, err := ds.AddTitle(5, "Kept", 2020)
	require.NoError(t, err)
	_, err = ds.AddTitle(5, "", 2020)
	require.Error(t, err)
	require.NoError(t, ds.Close())

	again, err := demo.OpenDataset(path)
	require.NoError(t, err)
	defer again.Close()
	assert.Equal(t, ds.Titles(), again.Titles())
	assert.Contains(t, again.TitlesBy(5), added)

	require.NoError(t, os.WriteFile(path, []byte("{not json\n"), 0o644))
	_, err = demo.OpenDataset(path)
	assert.ErrorContains(t, err, "line 1")
}
