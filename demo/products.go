package demo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kck-go/kck/primers"
)

// AuthorStats is the value of author_stats/{author_id}.
type AuthorStats struct {
	AuthorID   int64  `json:"authorId"`
	Name       string `json:"name"`
	TitleCount int64  `json:"titleCount"`
	FirstYear  int64  `json:"firstYear"`
	LastYear   int64  `json:"lastYear"`
	TotalSales int64  `json:"totalSales"`
}

// TopAuthor is one row of top_authors/{n}.
type TopAuthor struct {
	AuthorID   int64  `json:"authorId"`
	Name       string `json:"name"`
	TotalSales int64  `json:"totalSales"`
}

// MaxTop bounds top_authors/{n}.
const MaxTop = 100

// Keys of the products one author's titles feed.
func TitleListKey(authorID int64) string   { return "title_list/" + strconv.FormatInt(authorID, 10) }
func AuthorStatsKey(authorID int64) string { return "author_stats/" + strconv.FormatInt(authorID, 10) }

// Register declares the demo products and the add_title updater over ds:
//
//	title_list/{author_id}    an author's titles, oldest first (augmentable)
//	author/{author_id}        one author
//	author_stats/{author_id}  counts, years and sales; reads title_list through the cache
//	top_authors/{n}           the n best-selling authors, 1 <= n <= 100
//	author_ids                every author id: the domain of title_list
//	my_titles/{sub}           the caller's own titles: per user, keyed by the token's sub
//	add_title (updater)       {"authorId": 42, "title": "...", "year": 2024}
//
// and who may read them when the gateway verifies tokens (the same as the
// kck:auth headers of demo/sql): title_list, author, top_authors and
// author_ids are public; author_stats needs the scope stats:read and its
// author_id must be the token's sub; add_title needs titles:write and its
// authorId must be the sub; my_titles needs a token (any scope).
//
// Their warming, refresh and domains are those of the SQL demo's headers:
//
//	author       warmed at boot for every author id
//	title_list   the domain author_ids kept primed, checked every minute
//	top_authors  top_authors/10 warmed at boot, refreshed every minute
func Register(reg *primers.Registry, ds *Dataset) error {
	authorID := []primers.Param{{Name: "author_id", Kind: primers.Int}}
	public := primers.Auth{Public: true}
	return errors.Join(
		reg.Register(primers.Product{
			Name:    "title_list",
			Params:  authorID,
			Primer:  primers.Func1(ds.primeTitleList),
			Augment: augmentTitleList,
			Domain:  primers.Domain{Key: "author_ids", Schedule: primers.Every(time.Minute)},
			Auth:    public,
		}),
		reg.Register(primers.Product{
			Name:     "author",
			Params:   authorID,
			Primer:   primers.Func1(ds.primeAuthor),
			WarmKeys: ds.authorKeys,
			Auth:     public,
		}),
		reg.Register(primers.Product{
			Name:   "author_stats",
			Params: authorID,
			Primer: primers.Func1(ds.primeAuthorStats),
			Auth:   primers.Auth{Scopes: []string{"stats:read"}, Bind: map[string]string{"author_id": "sub"}},
		}),
		reg.Register(primers.Product{
			Name: "top_authors",
			// n is checked when the key is parsed: top_authors/101 is refused
			// before the primer runs.
			Params: []primers.Param{{Name: "n", Kind: primers.Int, Range: primers.IntRange(1, MaxTop)}},
			Primer: primers.Func1(ds.primeTopAuthors),
			Warm:   []string{"top_authors/10"},
			// Refreshed every minute: never older than two.
			Refresh:         primers.Every(time.Minute),
			FreshnessTarget: 2 * time.Minute,
			Auth:            public,
		}),
		reg.Register(primers.Product{
			Name:   "author_ids",
			Primer: primers.PrimerFunc(ds.primeAuthorIDs),
			Auth:   public,
		}),
		reg.Register(primers.Product{
			// No parameters: the key is my_titles/<sub>, the primer gets sub.
			Name:   "my_titles",
			Primer: primers.Func1(ds.primeMyTitles),
			Auth:   primers.Auth{KeyBy: []string{"sub"}},
		}),
		reg.RegisterUpdaterAuth("add_title", primers.UpdaterFunc(ds.updateAddTitle),
			primers.Auth{Scopes: []string{"titles:write"}, Bind: map[string]string{"authorId": "sub"}}),
	)
}

// authorKeys is the key of every author, to warm.
func (d *Dataset) authorKeys(context.Context) ([]string, error) {
	as := d.Authors()
	keys := make([]string, len(as))
	for i, a := range as {
		keys[i] = fmt.Sprintf("author/%d", a.ID)
	}
	return keys, nil
}

// primeMyTitles is the caller's own titles: the demo's users are its
// authors, a token's sub being an author id. It reads title_list through
// the cache, so a change to the list refreshes it.
func (d *Dataset) primeMyTitles(ctx context.Context, sub string) ([]Title, error) {
	id, err := strconv.ParseInt(sub, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: the caller is not an author", primers.ErrNoData)
	}
	if _, ok := d.Author(id); !ok {
		return nil, fmt.Errorf("%w: the caller is not an author", primers.ErrNoData)
	}
	var titles []Title
	if err := primers.Read(ctx, TitleListKey(id), &titles); err != nil {
		return nil, err
	}
	return titles, nil
}

func (d *Dataset) primeTitleList(_ context.Context, authorID int64) ([]Title, error) {
	if _, ok := d.Author(authorID); !ok {
		return nil, fmt.Errorf("%w: no author %d", primers.ErrNoData, authorID)
	}
	return d.TitlesBy(authorID), nil
}

func (d *Dataset) primeAuthorIDs(context.Context, primers.Key) (any, error) {
	as := d.Authors()
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	return ids, nil
}

func (d *Dataset) primeAuthor(_ context.Context, authorID int64) (Author, error) {
	a, ok := d.Author(authorID)
	if !ok {
		return Author{}, fmt.Errorf("%w: no author %d", primers.ErrNoData, authorID)
	}
	return a, nil
}

// primeAuthorStats is a product built on a product: it reads title_list
// through the cache, so a refresh of the list cascades to the stats.
func (d *Dataset) primeAuthorStats(ctx context.Context, authorID int64) (AuthorStats, error) {
	a, ok := d.Author(authorID)
	if !ok {
		return AuthorStats{}, fmt.Errorf("%w: no author %d", primers.ErrNoData, authorID)
	}
	var titles []Title
	if err := primers.Read(ctx, TitleListKey(authorID), &titles); err != nil {
		return AuthorStats{}, err
	}
	return statsOf(a, titles, d), nil
}

func statsOf(a Author, titles []Title, d *Dataset) AuthorStats {
	s := AuthorStats{AuthorID: a.ID, Name: a.Name, TitleCount: int64(len(titles))}
	ids := make([]int64, len(titles))
	for i, t := range titles {
		ids[i] = t.ID
		if i == 0 || t.Year < s.FirstYear {
			s.FirstYear = t.Year
		}
		s.LastYear = max(s.LastYear, t.Year)
	}
	s.TotalSales = d.SalesOf(ids...)
	return s
}

func (d *Dataset) primeTopAuthors(_ context.Context, n int64) ([]TopAuthor, error) {
	if n < 1 || n > MaxTop {
		return nil, fmt.Errorf("%w: n must be between 1 and %d, got %d", primers.ErrBadInput, MaxTop, n)
	}
	d.mu.RLock()
	rows := make([]TopAuthor, len(d.authors))
	for i, a := range d.authors {
		rows[i] = TopAuthor{AuthorID: a.ID, Name: a.Name}
	}
	for _, t := range d.titles {
		rows[t.AuthorID-1].TotalSales += d.salesBy[t.ID]
	}
	d.mu.RUnlock()
	slices.SortFunc(rows, func(a, b TopAuthor) int {
		return cmp.Or(cmp.Compare(b.TotalSales, a.TotalSales), cmp.Compare(a.AuthorID, b.AuthorID))
	})
	return rows[:n], nil
}

// AddTitleInput is the input of the add_title updater.
type AddTitleInput struct {
	AuthorID *int64  `json:"authorId"`
	Title    *string `json:"title"`
	Year     *int64  `json:"year"`
}

// updateAddTitle adds a title; title_list is augmented with it in place and
// author_stats is recomputed (after the list, as its dependent).
func (d *Dataset) updateAddTitle(_ context.Context, input json.RawMessage) (primers.UpdateResult, error) {
	var in AddTitleInput
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return primers.UpdateResult{}, fmt.Errorf("%w: add_title input: %v", primers.ErrBadInput, err)
	}
	if dec.More() {
		return primers.UpdateResult{}, fmt.Errorf("%w: add_title input: trailing data", primers.ErrBadInput)
	}
	if in.AuthorID == nil || in.Title == nil || in.Year == nil {
		return primers.UpdateResult{}, fmt.Errorf("%w: add_title needs authorId, title and year", primers.ErrBadInput)
	}
	t, err := d.AddTitle(*in.AuthorID, *in.Title, *in.Year)
	if err != nil {
		return primers.UpdateResult{}, err
	}
	list := TitleListKey(t.AuthorID)
	return primers.UpdateResult{
		Affected: []string{list, AuthorStatsKey(t.AuthorID)},
		Changes:  map[string]any{list: t},
		Result:   t,
	}, nil
}

// augmentTitleList folds a new Title into a title list, keeping the order
// title_list's primer gives.
func augmentTitleList(_ context.Context, _ primers.Key, current json.RawMessage, change any) (any, error) {
	t, ok := change.(Title)
	if !ok {
		return nil, primers.ErrCannotAugment
	}
	var ts []Title
	if err := json.Unmarshal(current, &ts); err != nil {
		return nil, primers.ErrCannotAugment
	}
	if slices.ContainsFunc(ts, func(x Title) bool { return x.ID == t.ID }) {
		return ts, nil
	}
	ts = append(ts, t)
	SortTitles(ts)
	return ts, nil
}
