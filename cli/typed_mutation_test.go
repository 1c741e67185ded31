package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The typed mutation runs a SQL updater (demo/sql/add_title.sql) as
// update(name, input) does: its RETURNING row is the typed title, the
// affected products come back fresh, and the updater's declared range
// refuses a bad year before anything is written.
func TestTypedMutationOnPostgres(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	cfg := testConfig(t, t.TempDir())
	cfg.PostgresURL = url
	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	n := titleCount(t, base)

	type payload struct {
		Data struct {
			AddTitle *struct {
				Title struct {
					ID, AuthorID int64
					Title        string
					Year         int64
				}
				TitleList   []struct{ ID int64 }
				AuthorStats struct{ TitleCount float64 }
				Products    []struct{ Key, Version string }
			}
		}
		Errors []struct{ Extensions struct{ Code string } }
	}
	add := func(year int) payload {
		body, _ := json.Marshal(map[string]any{
			"query":     `mutation($y: Int!) { addTitle(authorId: 7, title: " Typed in SQL ", year: $y) { title { id authorId title year } titleList { id } authorStats { titleCount } products { key version } } }`,
			"variables": map[string]any{"y": year},
		})
		resp, err := http.Post(base+"/graphql", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var p payload
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
		return p
	}

	p := add(2031)
	require.Empty(t, p.Errors)
	require.NotNil(t, p.Data.AddTitle)
	a := p.Data.AddTitle
	assert.Positive(t, a.Title.ID)
	assert.Equal(t, int64(7), a.Title.AuthorID)
	assert.Equal(t, "Typed in SQL", a.Title.Title, "the RETURNING row, trimmed by the SQL")
	assert.Equal(t, int64(2031), a.Title.Year)
	assert.Len(t, a.TitleList, int(n)+1)
	assert.Equal(t, a.Title.ID, a.TitleList[len(a.TitleList)-1].ID)
	assert.Equal(t, n+1, a.AuthorStats.TitleCount)
	require.Len(t, a.Products, 2)
	assert.Equal(t, n+1, titleCount(t, base), "read-your-writes")

	p = add(2101) // add_title.sql declares year int 1000..2100
	require.Len(t, p.Errors, 1)
	assert.Equal(t, "BAD_USER_INPUT", p.Errors[0].Extensions.Code)
	assert.Nil(t, p.Data.AddTitle)
	assert.Equal(t, n+1, titleCount(t, base), "nothing written")
}
