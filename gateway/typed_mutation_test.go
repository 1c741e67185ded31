package gateway_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/demo"
)

// The typed mutation obeys add_title's policy exactly as update(name,
// input) does (scope titles:write, authorId bound to sub), and shows the
// affected products only to a caller who may read them.
func TestTypedMutationKeepsTheUpdatersPolicy(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	n := len(e.ds.TitlesBy(5))
	add := func(author int, hdr ...string) (reply, authReply) {
		return e.gql(t, fmt.Sprintf(`{"query":"mutation { addTitle(authorId: %d, title: \"Mine\", year: 2026) { title { id } titleList { id } authorStats { authorId titleCount } products { key } } }"}`, author), hdr...)
	}
	r, g := add(5)
	assert.Equal(t, "UNAUTHENTICATED", codeAt(g, "addTitle"), r.body)
	r, g = add(5, bearer(e.hs(t, "5", "stats:read"))...)
	assert.Equal(t, "FORBIDDEN", codeAt(g, "addTitle"), "no titles:write: %s", r.body)
	r, g = add(6, bearer(e.hs(t, "5", "titles:write stats:read"))...)
	assert.Equal(t, "FORBIDDEN", codeAt(g, "addTitle"), "another author: %s", r.body)
	require.Len(t, e.ds.TitlesBy(5), n, "nothing written")
	require.Len(t, e.ds.TitlesBy(6), len(demo.NewDataset().TitlesBy(6)), "nothing written")

	// Allowed to write, not to read the stats: the write happens, the
	// public list is returned, the stats are null with FORBIDDEN and left
	// out of products.
	type payload struct {
		AddTitle struct {
			Title       *struct{ ID int64 }
			TitleList   []struct{ ID int64 }
			AuthorStats *struct{ AuthorID, TitleCount int64 }
			Products    []struct{ Key string }
		}
	}
	r, g = add(5, bearer(e.hs(t, "5", "titles:write"))...)
	require.Equal(t, 200, r.status, r.body)
	require.Len(t, e.ds.TitlesBy(5), n+1)
	var p payload
	require.NoError(t, json.Unmarshal([]byte(`{"addTitle":`+string(g.Data["addTitle"])+`}`), &p), r.body)
	require.NotNil(t, p.AddTitle.Title, r.body)
	assert.Len(t, p.AddTitle.TitleList, n+1)
	assert.Nil(t, p.AddTitle.AuthorStats)
	var codes []string
	for _, er := range g.Errors {
		codes = append(codes, er.Extensions.Code)
	}
	assert.Equal(t, []string{"FORBIDDEN", "FORBIDDEN"}, codes, "authorStats and products' author_stats: %s", r.body)
	assert.Equal(t, []struct{ Key string }{{"title_list/5"}}, p.AddTitle.Products)

	// With stats:read as well, everything.
	r, g = add(5, bearer(e.hs(t, "5", "titles:write stats:read"))...)
	require.Empty(t, g.Errors, r.body)
	p = payload{}
	require.NoError(t, json.Unmarshal([]byte(`{"addTitle":`+string(g.Data["addTitle"])+`}`), &p))
	require.NotNil(t, p.AddTitle.AuthorStats)
	assert.Equal(t, int64(n+2), p.AddTitle.AuthorStats.TitleCount)
	assert.Len(t, p.AddTitle.Products, 2)
}
