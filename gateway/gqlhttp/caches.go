package gqlhttp

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/maypok86/otter/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// byteCache is a graphql.Cache bounded by an estimate of the bytes its
// entries hold, not by their count: gqlgen's lru caches hold 1,000 entries
// of any size, so 1,000 distinct 1 MB queries kept gigabytes.
type byteCache[T any] struct {
	c *otter.Cache[string, T]
}

var (
	_ graphql.Cache[*ast.QueryDocument] = byteCache[*ast.QueryDocument]{}
	_ graphql.Cache[string]             = byteCache[string]{}
)

func newByteCache[T any](maxBytes uint64, weigh func(key string, v T) uint64) (byteCache[T], error) {
	c, err := otter.New(&otter.Options[string, T]{
		MaximumWeight: maxBytes,
		Weigher: func(k string, v T) uint32 {
			return uint32(min(weigh(k, v), 1<<32-1))
		},
	})
	return byteCache[T]{c: c}, err
}

func (b byteCache[T]) Get(_ context.Context, key string) (T, bool) { return b.c.GetIfPresent(key) }
func (b byteCache[T]) Add(_ context.Context, key string, v T)      { b.c.Set(key, v) }

// A parsed and validated document holds about its text twice over (the
// source and the values cut from it) and a few hundred bytes per field
// (AST node, position, definitions): measured with runtime.MemStats on the
// demo's queries, a 480-field selection, 30 aliased product fields and a
// 100 KB string argument, this estimate was above the heap each held.
const (
	docBytesPerField   = 320
	entryOverheadBytes = 256
)

func weighDocument(query string, doc *ast.QueryDocument) uint64 {
	return 2*uint64(len(query)) + docBytesPerField*uint64(countFields(doc)) + entryOverheadBytes
}

// countFields counts the fields written in doc (fragments not expanded).
func countFields(doc *ast.QueryDocument) int {
	var walk func(ast.SelectionSet) int
	walk = func(ss ast.SelectionSet) int {
		n := 0
		for _, sel := range ss {
			switch x := sel.(type) {
			case *ast.Field:
				n += 1 + walk(x.SelectionSet)
			case *ast.InlineFragment:
				n += walk(x.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += walk(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		n += walk(f.SelectionSet)
	}
	return n
}

func weighQuery(hash, query string) uint64 {
	return uint64(len(hash)+len(query)) + entryOverheadBytes
}
