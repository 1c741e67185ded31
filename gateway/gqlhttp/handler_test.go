package gqlhttp_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/internal/graphqltest"
	"github.com/kck-go/kck/primers"
)

// The error presenter's side of the handler: every error a client sees has
// an extensions.code, a path where it has one, and no internal details. The
// resolvers' own tests (package graph) run through this handler too.

type response = graphqltest.Response

type env struct{ h http.Handler }

// newEnv is the handler over a real cache on the in-memory store, with the
// demo products, one whose primer fails and one whose primer panics.
func newEnv(t *testing.T) *env {
	t.Helper()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, demo.NewDataset()))
	n := []primers.Param{{Name: "n", Kind: primers.Int}}
	reg.MustRegister(
		primers.Product{Name: "flaky", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			return 0, errors.New("database is down")
		})},
		primers.Product{Name: "boom", Params: n, Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) {
			var xs []int64
			return xs[n], nil
		})},
	)
	c, err := cache.New(cache.Options{Registry: reg, Store: store})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	h, err := gqlhttp.NewHandler(gqlhttp.Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return &env{h: h}
}

func (e *env) query(t *testing.T, query string, vars map[string]any) response {
	t.Helper()
	return graphqltest.Query(t, e.h, query, vars)
}

func (e *env) ok(t *testing.T, query string, vars map[string]any, into any) response {
	t.Helper()
	return graphqltest.OK(t, e.h, query, vars, into)
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name, query, code string
	}{
		{"malformed key", `{ product(key: "title_list/x") { value } }`, "BAD_USER_INPUT"},
		{"too many params", `{ product(key: "title_list/1/2") { value } }`, "BAD_USER_INPUT"},
		{"top_authors out of range", `{ topAuthors(n: 0) { name } }`, "BAD_USER_INPUT"},
		{"bad updater input", `mutation { update(name: "add_title", input: {authorId: 1, title: "", year: 2000}) { name } }`, "BAD_USER_INPUT"},
		{"unknown input field", `mutation { update(name: "add_title", input: {authorId: 1, title: "x", year: 2000, isbn: 1}) { name } }`, "BAD_USER_INPUT"},
		{"wrong argument type", `{ titleList(authorId: "x") { id } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown product", `{ product(key: "nope/1") { value } }`, "NOT_FOUND"},
		{"unknown updater", `mutation { update(name: "nope", input: {}) { name } }`, "NOT_FOUND"},
		{"no such author", `{ author(authorId: 99999) { name } }`, "NOT_FOUND"},
		{"primer error", `{ product(key: "flaky/1") { value } }`, "PRIMER_FAILED"},
		{"primer panic", `{ product(key: "boom/3") { value } }`, "PRIMER_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.query(t, tc.query, nil)
			require.NotEmpty(t, r.Errors)
			assert.Equal(t, tc.code, r.Codes()[0], r.Errors[0].Message)
			assert.NotContains(t, r.Errors[0].Message, "goroutine", "no stack traces")
		})
	}
	// The panic named the product and did not take the handler down.
	r := e.query(t, `{ product(key: "boom/3") { value } }`, nil)
	assert.Contains(t, r.Errors[0].Message, "boom")
	var got struct{ Author demo.Author }
	e.ok(t, `{ author(authorId: 1) { id name } }`, nil, &got)
	assert.Equal(t, int64(1), got.Author.ID)
}

func TestPartialResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.query(t, `{ author(authorId: 3) { id } bad: product(key: "nope/1") { value } }`, nil)
	require.Len(t, r.Errors, 1)
	assert.Equal(t, []string{"NOT_FOUND"}, r.Codes())
	assert.Equal(t, []any{"bad"}, r.Errors[0].Path)
	assert.JSONEq(t, `{"author":{"id":3},"bad":null}`, string(r.Data))
}
