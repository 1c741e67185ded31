package graph

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

// docBytesPerQueryByte estimates the heap a parsed and validated document
// holds per byte of its query text (AST nodes, positions, the text itself),
// measured on the demo's queries and on long repetitive ones (see
// TestDocumentWeight).
const docBytesPerQueryByte = 24

// entryOverheadBytes is what one cache entry costs beyond its contents.
const entryOverheadBytes = 256

func weighDocument(query string, _ *ast.QueryDocument) uint64 {
	return uint64(len(query))*(docBytesPerQueryByte+1) + entryOverheadBytes
}

func weighQuery(hash, query string) uint64 {
	return uint64(len(hash)+len(query)) + entryOverheadBytes
}
