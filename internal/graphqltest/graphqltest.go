// Package graphqltest posts GraphQL requests to a handler in tests and
// decodes the answers: the resolvers' tests (package graph) and the
// transport's (gateway/gqlhttp) read them alike.
package graphqltest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// Error is one entry of a response's errors.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Read is one entry of extensions.kck.products.
type Read struct {
	Key        string `json:"key"`
	Version    string `json:"version"`
	ComputedAt string `json:"computedAt"`
	Stale      bool   `json:"stale"`
}

// Response is a GraphQL response as KCK writes it.
type Response struct {
	Data       json.RawMessage `json:"data"`
	Errors     []Error         `json:"errors"`
	Extensions struct {
		KCK struct {
			Products []Read `json:"products"`
		} `json:"kck"`
	} `json:"extensions"`
}

// Codes are the errors' extensions.code, in order.
func (r Response) Codes() []string {
	var cs []string
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		cs = append(cs, c)
	}
	return cs
}

// Query posts query with vars to h as application/json and decodes the
// answer (which must be JSON).
func Query(t testing.TB, h http.Handler, query string, vars map[string]any) Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var r Response
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	return r
}

// OK is Query for a query that must succeed: its data decoded into into.
func OK(t testing.TB, h http.Handler, query string, vars map[string]any, into any) Response {
	t.Helper()
	r := Query(t, h, query, vars)
	require.Empty(t, r.Errors, "query %s", query)
	require.NoError(t, json.Unmarshal(r.Data, into))
	return r
}
