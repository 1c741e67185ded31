package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/internal/metrictest"
)

// fuzzChecks fail a fuzz input that made the gateway log an error (a
// recovered panic, an internal error: the demo products fail only on bad
// input) or answer with a 5xx.
func fuzzChecks(t *testing.T, e *env, before int, rec *httptest.ResponseRecorder, in []byte) {
	t.Helper()
	if rec.Code >= 500 && !(rec.Code == http.StatusBadGateway && bytes.Contains(in, []byte("failing"))) {
		t.Fatalf("status %d for %q: %s", rec.Code, in, rec.Body.String())
	}
	if n, errs := e.logs.Errors(); n > before {
		t.Fatalf("logged at error level for %q: %v", in, errs[before:])
	}
}

// GraphQL over GET (APQ, the caching headers, If-None-Match) takes its
// request from the query string and headers: whatever they hold, no 5xx and
// no error log, a mutation is never run, and a 200 carries Cache-Control.
func FuzzGraphQLGet(f *testing.F) {
	for _, s := range []string{
		`query=` + url.QueryEscape(`{ titleList(authorId: 42) { id title } }`),
		`query=` + url.QueryEscape(`query($n: Int!) { topAuthors(n: $n) { name } }`) + `&variables=` + url.QueryEscape(`{"n":3}`),
		`query=` + url.QueryEscape(`mutation { invalidate(key: "title_list/1") }`),
		`extensions=` + url.QueryEscape(`{"persistedQuery":{"version":1,"sha256Hash":"0000000000000000000000000000000000000000000000000000000000000000"}}`),
		`extensions=%7B&query=%zz`,
		`query=&variables=null&operationName=`,
	} {
		f.Add(s, "application/graphql-response+json", `"x"`)
		f.Add(s, "", "*")
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, rawQuery, accept, inm string) {
		before, _ := e.logs.Errors()
		req := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		req.URL.RawQuery = rawQuery
		req.Header.Set("Accept", accept)
		req.Header.Set("If-None-Match", inm)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		fuzzChecks(t, e, before, rec, []byte(rawQuery))
		if rec.Code == http.StatusOK && rec.Header().Get("Cache-Control") == "" {
			t.Fatalf("200 without Cache-Control for %q", rawQuery)
		}
		if rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), `"data":{`) {
			var out struct{ Data map[string]json.RawMessage }
			if json.Unmarshal(rec.Body.Bytes(), &out) == nil {
				for _, m := range []string{"update", "refresh", "invalidate", "addTitle"} {
					if _, ran := out.Data[m]; ran {
						t.Fatalf("a GET ran mutation %s: %q", m, rawQuery)
					}
				}
			}
		}
	})
}

// The demo products fail only on bad input (4xx), so any 5xx or error log
// here is a bug; so is a document beyond the limits that is not refused
// with LIMIT_EXCEEDED, or one refused by a document limit after it was
// validated.
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
		`[1]`,
		``,
		`{"query":1}`,
		`{"query":"{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }"}`,
		`{"query":"{ x: __typename y: __typename ...F } fragment F on Query { ...G ...G } fragment G on Query { __typename }"}`,
		`{"query":"{ topAuthors(n: 101) { name } sparse: product(key: \"sparse/1\") { key } }"}`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	lim := gqlhttp.Limits{}.WithDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		before, _ := e.logs.Errors()
		validated := metrictest.Value(t, e.metrics, "kck_graphql_validations_total")
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		fuzzChecks(t, e, before, rec, body)

		var params struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(body, &params) != nil || params.Query == "" {
			return
		}
		resp := rec.Body.String()
		if over, what := beyondLimits(params.Query, lim); over && !strings.Contains(resp, `"LIMIT_EXCEEDED"`) {
			t.Fatalf("document beyond the %s limit was not refused: %q: %s", what, params.Query, resp)
		}
		if strings.Contains(resp, `"limit":"`) && !strings.Contains(resp, `"limit":"complexity"`) && !strings.Contains(resp, `"limit":"misses"`) {
			if metrictest.Value(t, e.metrics, "kck_graphql_validations_total") != validated {
				t.Fatalf("document refused by a limit after it was validated: %q: %s", params.Query, resp)
			}
		}
	})
}

// beyondLimits is an oracle apart from the gateway's: a plain walk that
// expands fragments (visiting at most 100,000 selections) and reports a
// limit the document exceeds.
func beyondLimits(q string, lim gqlhttp.Limits) (bool, string) {
	lx := lexer.New(&ast.Source{Input: q})
	for n := 0; ; n++ {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			break
		}
		if n >= lim.MaxTokens {
			return true, "tokens"
		}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		return false, ""
	}
	frags := map[string]*ast.FragmentDefinition{}
	for _, fr := range doc.Fragments {
		if _, ok := frags[fr.Name]; !ok {
			frags[fr.Name] = fr
		}
	}
	steps, fields, aliases, depth := 0, 0, 0, 0
	var walk func(ss ast.SelectionSet, d int, path map[string]bool) int
	walk = func(ss ast.SelectionSet, d int, path map[string]bool) (top int) {
		for _, sel := range ss {
			if steps++; steps > 100000 {
				return top
			}
			switch x := sel.(type) {
			case *ast.Field:
				top++
				fields++
				if x.Alias != x.Name {
					aliases++
				}
				depth = max(depth, d+1)
				walk(x.SelectionSet, d+1, path)
			case *ast.InlineFragment:
				top += walk(x.SelectionSet, d, path)
			case *ast.FragmentSpread:
				if fr, ok := frags[x.Name]; ok && !path[x.Name] {
					path[x.Name] = true
					top += walk(fr.SelectionSet, d, path)
					delete(path, x.Name)
				}
			}
		}
		return top
	}
	root := 0
	for _, op := range doc.Operations {
		root = max(root, walk(op.SelectionSet, 0, map[string]bool{}))
	}
	switch {
	case steps > 100000 || fields > lim.MaxFields:
		return true, "fields"
	case root > lim.MaxRootFields:
		return true, "root_fields"
	case depth > lim.MaxDepth:
		return true, "depth"
	case aliases > lim.MaxAliases:
		return true, "aliases"
	}
	return false, ""
}

// FuzzFetch reads arbitrary keys: never a 5xx (but the failing product's
// 502) or an error log, and never more primer runs than the miss budget
// allows (twice it: author_stats reads title_list).
func FuzzFetch(f *testing.F) {
	for _, s := range []string{
		"title_list/1", "top_authors/101", "author_stats/7", "sparse/3", "nosuch/1", "a%2Fb/%zz",
		"title_list/1&key=title_list/2&key=author/3", strings.Repeat("x", 2000),
	} {
		f.Add(s)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, keys string) {
		before, _ := e.logs.Errors()
		runs := primerRuns(t, e)
		var q []string
		for k := range strings.SplitSeq(keys, "&key=") {
			q = append(q, "key="+url.QueryEscape(k))
		}
		req := httptest.NewRequest(http.MethodGet, "/fetch?"+strings.Join(q, "&"), nil)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		fuzzChecks(t, e, before, rec, []byte(keys))
		if d := primerRuns(t, e) - runs; d > 2*20 {
			t.Fatalf("%d primer runs for %q, past the miss budget", int(d), keys)
		}
		if rec.Body.Len() > 64<<10+len(keys)*2 {
			t.Fatalf("a %d-byte answer for %d bytes of keys", rec.Body.Len(), len(keys))
		}
	})
}

func primerRuns(t testing.TB, e *env) float64 {
	var n float64
	for _, p := range []string{"title_list", "author", "author_stats", "top_authors", "author_ids", "failing", "counted", "sparse"} {
		n += metrictest.Value(t, e.metrics, "kck_primer_runs_total", p)
	}
	return n
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
		before, _ := e.logs.Errors()
		req := httptest.NewRequest(http.MethodPost, "/update", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		fuzzChecks(t, e, before, rec, body)
	})
}
