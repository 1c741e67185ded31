package dynamic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/graph/dynamic"
	"github.com/kck-go/kck/primers"
)

// shelf is a product no compiled schema declares, as a SQL product's
// rows look: JSON keys are the columns' names.
type shelf struct {
	books  atomic.Pointer[[]map[string]any]
	primes atomic.Int64
}

func newShelf() *shelf {
	s := &shelf{}
	s.books.Store(&[]map[string]any{
		{"id": 1, "shelf_id": 7, "title": "Dune", "pages": 412, "big": int64(9007199254740993), "tags": []string{"sf", "classic"}, "meta": map[string]any{"isbn": "x"}},
		{"id": 2, "shelf_id": 7, "title": "Emma", "pages": nil, "big": 2, "tags": nil, "meta": nil},
	})
	return s
}

func (s *shelf) register(t testing.TB, reg *primers.Registry) {
	t.Helper()
	require.NoError(t, reg.Register(primers.Product{
		Name: "shelf_books", Params: []primers.Param{{Name: "shelf_id", Kind: primers.Int}},
		Auth: primers.Auth{Public: true},
		Primer: primers.PrimerFunc(func(_ context.Context, k primers.Key) (any, error) {
			s.primes.Add(1)
			if k.Args[0].(int64) != 7 {
				return nil, fmt.Errorf("%w: no shelf %d", primers.ErrNoData, k.Args[0])
			}
			return *s.books.Load(), nil
		}),
	}))
	require.NoError(t, reg.RegisterUpdaterAuth("add_book", primers.UpdaterFunc(func(_ context.Context, in json.RawMessage) (primers.UpdateResult, error) {
		var b struct {
			ShelfID int64  `json:"shelfId"`
			Title   string `json:"title"`
		}
		if err := json.Unmarshal(in, &b); err != nil {
			return primers.UpdateResult{}, fmt.Errorf("%w: %v", primers.ErrBadInput, err)
		}
		books := append([]map[string]any(nil), *s.books.Load()...)
		row := map[string]any{"id": len(books) + 1, "shelf_id": b.ShelfID, "title": b.Title, "pages": nil, "big": 1, "tags": nil, "meta": nil}
		s.books.Store(ptr(append(books, row)))
		return primers.UpdateResult{Affected: []string{fmt.Sprintf("shelf_books/%d", b.ShelfID)}, Result: row}, nil
	}), primers.Auth{Public: true}))
}

func ptr[T any](v T) *T { return &v }

// shelfSpec is what sqlproduct.DescribeAPI would make of such a product.
var shelfSpec = dynamic.Spec{
	Products: []dynamic.Product{{
		Name: "shelf_books", Field: "shelfBooks", Args: []dynamic.Arg{{Name: "shelfId", Type: "Int!"}},
		Type: "[ShelfBooksRow!]", Description: "Product shelf_books/{shelf_id}, from shelf_books.sql.",
		Pos: dynamic.Pos{File: "shelf_books.sql", Line: 1},
		Object: &dynamic.Object{Name: "ShelfBooksRow", Pos: dynamic.Pos{File: "shelf_books.sql", Line: 1}, Fields: []dynamic.Field{
			{Name: "id", Key: "id", Type: "Int!"}, {Name: "shelfId", Key: "shelf_id", Type: "Int!"},
			{Name: "title", Key: "title", Type: "String!"}, {Name: "pages", Key: "pages", Type: "Int"},
			{Name: "big", Key: "big", Type: "BigInt!"}, {Name: "tags", Key: "tags", Type: "[String]"},
			{Name: "meta", Key: "meta", Type: "JSON"},
		}},
	}},
	Updaters: []dynamic.Updater{{
		Name: "add_book", Field: "addBook", Args: []dynamic.Arg{{Name: "shelfId", Type: "Int!"}, {Name: "title", Type: "String!"}},
		Affects: []string{"shelf_books"}, Pos: dynamic.Pos{File: "add_book.sql", Line: 1},
		Result: &dynamic.Object{Name: "Book", Pos: dynamic.Pos{File: "add_book.sql", Line: 1}, Fields: []dynamic.Field{
			{Name: "id", Key: "id", Type: "Int!"}, {Name: "shelfId", Key: "shelf_id", Type: "Int!"}, {Name: "title", Key: "title", Type: "String!"},
		}},
	}},
}

// rig is a gateway serving KCK's compiled schema (the Go demo's products)
// and shelfSpec's dynamic fields.
type rig struct {
	t     testing.TB
	h     http.Handler
	gw    *gateway.Server
	cache *cache.Cache
	shelf *shelf
	reg   *primers.Registry
}

func newRig(t testing.TB, spec dynamic.Spec, mod ...func(*gateway.Options)) *rig {
	t.Helper()
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, demo.NewDataset()))
	s := newShelf()
	s.register(t, reg)
	c, err := cache.New(cache.Options{Registry: reg, Store: memory.New()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	metrics := prometheus.NewRegistry()
	o := gateway.Options{
		Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: metrics, Gatherer: metrics,
		Extend: extend(spec, reg),
	}
	for _, m := range mod {
		m(&o)
	}
	gw, err := gateway.New(o)
	require.NoError(t, err)
	return &rig{t: t, h: gw, gw: gw, cache: c, shelf: s, reg: reg}
}

func extend(spec dynamic.Spec, reg *primers.Registry) graph.Extend {
	return func(compiled graphql.ExecutableSchema, r *graph.Resolver) (graphql.ExecutableSchema, error) {
		return dynamic.New(compiled, r, reg, spec)
	}
}

// post sends a GraphQL request and returns the status and body.
func (r *rig) post(query string, vars map[string]any, hdr ...string) (int, string) {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

type reply struct {
	Data       json.RawMessage `json:"data"`
	Errors     []replyError    `json:"errors"`
	Extensions json.RawMessage `json:"extensions"`
}

type replyError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (r *rig) query(query string, vars map[string]any) reply {
	r.t.Helper()
	code, body := r.post(query, vars)
	require.Equal(r.t, http.StatusOK, code, body)
	var rep reply
	require.NoError(r.t, json.Unmarshal([]byte(body), &rep), body)
	return rep
}

// A dynamic field is served typed: its JSON keys become the fields'
// names, int8 a string of digits, lists and JSON as they are, aliases,
// fragments, __typename and directives as gqlparser and gqlgen do them.
func TestDynamicField(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		data        string
	}{
		{"fields", `{ shelfBooks(shelfId: 7) { id shelfId title pages big tags meta } }`, nil,
			`{"shelfBooks":[{"id":1,"shelfId":7,"title":"Dune","pages":412,"big":"9007199254740993","tags":["sf","classic"],"meta":{"isbn":"x"}},` +
				`{"id":2,"shelfId":7,"title":"Emma","pages":null,"big":"2","tags":null,"meta":null}]}`},
		{"order, aliases, typename", `query($s: Int!) { b: shelfBooks(shelfId: $s) { __typename n: title id } }`, map[string]any{"s": 7},
			`{"b":[{"__typename":"ShelfBooksRow","n":"Dune","id":1},{"__typename":"ShelfBooksRow","n":"Emma","id":2}]}`},
		{"fragments and skip", `{ ...F shelfBooks(shelfId: 7) { id @skip(if: true) ... on ShelfBooksRow { title } } } fragment F on Query { x: shelfBooks(shelfId: 7) { id } }`, nil,
			`{"x":[{"id":1},{"id":2}],"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`},
		{"with compiled fields, in the document's order", `{ author(authorId: 1) { id } shelfBooks(shelfId: 7) { id } __typename topAuthors(n: 1) { authorId } }`, nil,
			`{"author":{"id":1},"shelfBooks":[{"id":1},{"id":2}],"__typename":"Query","topAuthors":[{"authorId":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.query(tc.query, tc.vars)
			require.Empty(t, rep.Errors)
			assert.True(t, strings.HasPrefix(string(rep.Data), tc.data), "%s\nwant %s", rep.Data, tc.data)
		})
	}
}

// A typed mutation runs the updater with its arguments as input and answers
// with its result, the affected products as the write left them, and their
// freshness, as compiled typed mutations do.
func TestDynamicMutation(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	before := r.query(`{ shelfBooks(shelfId: 7) { id } }`, nil)
	require.Empty(t, before.Errors)
	rep := r.query(`mutation($t: String!) { addBook(shelfId: 7, title: $t) { __typename result { id title } shelfBooks { id title } products { key stale } } }`,
		map[string]any{"t": "Ulysses"})
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"addBook":{"__typename":"AddBookPayload","result":{"id":3,"title":"Ulysses"},`+
		`"shelfBooks":[{"id":1,"title":"Dune"},{"id":2,"title":"Emma"},{"id":3,"title":"Ulysses"}],`+
		`"products":[{"key":"shelf_books/7","stale":false}]}}`, string(rep.Data))
	assert.Contains(t, string(rep.Extensions), `"key":"shelf_books/7"`, "its freshness in extensions.kck")

	// Mixed with a compiled mutation: in turn, in the document's order.
	rep = r.query(`mutation { a: addBook(shelfId: 7, title: "A") { result { id } } i: invalidate(key: "author/1") b: addBook(shelfId: 7, title: "B") { result { id } } }`, nil)
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"a":{"result":{"id":4}},"i":true,"b":{"result":{"id":5}}}`, string(rep.Data))

	// Bad input is the updater's error, the field (non-null) nulls data.
	rep = r.query(`mutation { addBook(shelfId: 2147483648, title: "x") { result { id } } }`, nil)
	require.NotEmpty(t, rep.Errors)
	assert.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"])
}

// Errors: a product's own (no data), a value that does not fit its type
// (null propagates to the nearest nullable field), arguments out of range.
func TestDynamicErrors(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	rep := r.query(`{ shelfBooks(shelfId: 8) { id } author(authorId: 1) { id } }`, nil)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, "NOT_FOUND", rep.Errors[0].Extensions["code"])
	assert.Equal(t, []any{"shelfBooks"}, rep.Errors[0].Path)
	assert.JSONEq(t, `{"shelfBooks":null,"author":{"id":1}}`, string(rep.Data), "the other field is served")

	// A row whose non-null title is null: the list of non-null rows is
	// null, with an error at the title.
	r.shelf.books.Store(&[]map[string]any{{"id": 1, "shelf_id": 7, "title": nil, "big": 1}})
	require.NoError(t, r.cache.Invalidate(context.Background(), "shelf_books/7"))
	rep = r.query(`{ shelfBooks(shelfId: 7) { id title } }`, nil)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, []any{"shelfBooks", float64(0), "title"}, rep.Errors[0].Path)
	assert.Equal(t, "INTERNAL", rep.Errors[0].Extensions["code"])
	assert.JSONEq(t, `{"shelfBooks":null}`, string(rep.Data))

	// An Int that is no Int (32 bits) is an error, never a wrong number.
	r.shelf.books.Store(&[]map[string]any{{"id": int64(1) << 40, "shelf_id": 7, "title": "x", "big": 1}})
	require.NoError(t, r.cache.Invalidate(context.Background(), "shelf_books/7"))
	rep = r.query(`{ shelfBooks(shelfId: 7) { id } }`, nil)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, []any{"shelfBooks", float64(0), "id"}, rep.Errors[0].Path)

	rep = r.query(`query($s: Int!) { shelfBooks(shelfId: $s) { id } }`, map[string]any{"s": 1 << 40})
	require.NotEmpty(t, rep.Errors)
	assert.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"])
}

// Over HTTP a subscription answers its current value once, as gqlgen's
// compiled subscriptions do.
func TestDynamicSubscriptionOverHTTP(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	rep := r.query(`subscription { shelfBooks(shelfId: 7) { title } }`, nil)
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, `{"shelfBooks":[{"title":"Dune"},{"title":"Emma"}]}`, string(rep.Data))
	assert.Contains(t, string(rep.Extensions), `"key":"shelf_books/7"`)
}

// Introspection of the merged schema answers what gqlgen's generated
// introspection answers for the same schema: the compiled executable
// schema given the merged one (graph.Config.Schema) is the reference.
func TestDynamicIntrospection(t *testing.T) {
	t.Parallel()
	r := newRig(t, shelfSpec)
	merged := r.gw.Schema()
	require.NotNil(t, merged.Types["ShelfBooksRow"])
	ref := newRig(t, dynamic.Spec{}, func(o *gateway.Options) {
		o.Schema = func(res *graph.Resolver) graphql.ExecutableSchema {
			return graph.NewExecutableSchema(graph.Config{Resolvers: res, Schema: merged})
		}
		o.Extend = nil
	})
	for _, q := range []string{introspectionQuery,
		`{ __type(name: "ShelfBooksRow") { name kind fields { name type { kind name ofType { kind name ofType { name } } } } } }`,
		`{ __type(name: "AddBookPayload") { fields(includeDeprecated: true) { name description args { name } } } a: __type(name: "Nope") { name } }`,
		`{ __schema { queryType { name } mutationType { fields { name args { name type { name kind ofType { name } } } } } } }`,
	} {
		got, want := r.query(q, nil), ref.query(q, nil)
		require.Empty(t, got.Errors)
		require.Empty(t, want.Errors)
		assert.JSONEq(t, string(want.Data), string(got.Data), q)
	}
}

// introspectionQuery is graphql-js's getIntrospectionQuery (with
// descriptions, specifiedByURL and directive repeatability), as
// GraphiQL and GraphQL Code Generator send it.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations isRepeatable args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`

// Every parameter kind arrives as the key takes it: Int, Float, String,
// Boolean, Date (YYYY-MM-DD) and Time (RFC 3339), literals or variables.
func TestDynamicArgumentKinds(t *testing.T) {
	t.Parallel()
	spec := dynamic.Spec{Products: []dynamic.Product{{
		Name: "echo", Field: "echo", Type: "String", Pos: dynamic.Pos{File: "echo.sql", Line: 1},
		Args: []dynamic.Arg{{Name: "n", Type: "Int!"}, {Name: "f", Type: "Float!"}, {Name: "s", Type: "String!"},
			{Name: "b", Type: "Boolean!"}, {Name: "onDay", Type: "Date!"}, {Name: "at", Type: "Time!"}},
	}}}
	r := newRig(t, spec, func(o *gateway.Options) {
		o.Cache.Registry().MustRegister(primers.Product{
			Name: "echo", Auth: primers.Auth{Public: true},
			Params: []primers.Param{{Name: "n", Kind: primers.Int}, {Name: "f", Kind: primers.Float}, {Name: "s", Kind: primers.String},
				{Name: "b", Kind: primers.Bool}, {Name: "on_day", Kind: primers.Date}, {Name: "at", Kind: primers.Timestamp}},
			Primer: primers.PrimerFunc(func(_ context.Context, k primers.Key) (any, error) { return k.String(), nil }),
		})
	})
	want := `{"echo":"echo/7/1.5/a%2Fb/true/2026-02-03/2026-02-03T04:05:06Z"}`
	rep := r.query(`{ echo(n: 7, f: 1.5, s: "a/b", b: true, onDay: "2026-02-03", at: "2026-02-03T04:05:06Z") }`, nil)
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, want, string(rep.Data))
	rep = r.query(`query($n: Int!, $f: Float!, $s: String!, $b: Boolean!, $d: Date!, $t: Time!) { echo(n: $n, f: $f, s: $s, b: $b, onDay: $d, at: $t) }`,
		map[string]any{"n": 7, "f": 1.5, "s": "a/b", "b": true, "d": "2026-02-03", "t": "2026-02-03T04:05:06Z"})
	require.Empty(t, rep.Errors)
	assert.JSONEq(t, want, string(rep.Data))
	rep = r.query(`{ echo(n: 7, f: 1.5, s: "x", b: true, onDay: "3 Feb", at: "2026-02-03T04:05:06Z") }`, nil)
	require.NotEmpty(t, rep.Errors)
	assert.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"])
}
