package gateway_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The demo products fail only on bad input (4xx), so any 5xx here is a bug.
func FuzzGraphQLRequest(f *testing.F) {
	for _, s := range []string{
		`{"query":"{ titleList(authorId: 42) { id title } }"}`,
		`{"query":"query($n: Int!) { topAuthors(n: $n) { name } }","variables":{"n":3}}`,
		`{"query":"{ product(key: \"author_stats/7\") { key version value } }"}`,
		`{"query":"mutation { update(name: \"add_title\", input: {authorId: 1, title: \"t\", year: 2000}) { name } }"}`,
		`{"query":"mutation { invalidate(key: \"title_list/1\") }"}`,
		`{"query":"{ __schema { types { name } } }"}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`,
		`[{"query":"{ author(authorId: 1) { id } }"}]`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}

func FuzzUpdate(f *testing.F) {
	for _, s := range []string{
		`{"name":"add_title","input":{"authorId":42,"title":"A","year":2001}}`,
		`{"name":"add_title","input":{"authorId":-1,"title":"","year":0}}`,
		`{"name":"nope","input":[]}`,
		`{"name":"add_title","input":"x"}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/update", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
