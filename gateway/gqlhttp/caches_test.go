package gqlhttp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// The parsed-query and APQ caches hold no more than their bytes: the attack
// left a 1.75 GB heap with 1,000 distinct 1 MB queries in gqlgen's
// count-bounded caches.
func TestByteCachesBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 4 << 20
	docs, err := newByteCache(max, weighDocument)
	require.NoError(t, err)
	apq, err := newByteCache(max, weighQuery)
	require.NoError(t, err)
	for i := range 1000 {
		q := fmt.Sprintf(`{ product(key: "%d/%s") { key } }`, i, strings.Repeat("x", 100<<10))
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		require.NoError(t, err)
		docs.Add(ctx, q, doc)
		apq.Add(ctx, fmt.Sprint(i), q)
	}
	docs.c.CleanUp()
	apq.c.CleanUp()
	assert.LessOrEqual(t, docs.c.WeightedSize(), uint64(max))
	assert.LessOrEqual(t, apq.c.WeightedSize(), uint64(max))
	assert.Positive(t, docs.c.EstimatedSize())
	assert.Less(t, docs.c.EstimatedSize(), 1000)
	assert.Less(t, apq.c.EstimatedSize(), 1000)
}

func TestWeighDocumentCountsFields(t *testing.T) {
	t.Parallel()
	small, err := parser.ParseQuery(&ast.Source{Input: "{ a }"})
	require.NoError(t, err)
	q := "{ a { " + strings.Repeat("b ", 400) + "} ...F } fragment F on Q { c }"
	wide, err := parser.ParseQuery(&ast.Source{Input: q})
	require.NoError(t, err)
	assert.Equal(t, 1, countFields(small))
	assert.Equal(t, 402, countFields(wide))
	assert.Greater(t, weighDocument(q, wide), uint64(400*docBytesPerField))
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		q                                  string
		fields, aliases, depth, rootFields int
	}{
		{"{ a }", 1, 0, 1, 1},
		{"{ a b { c d { e } } }", 5, 0, 3, 2},
		{"{ x: a y: a a }", 3, 2, 1, 3},
		{"{ ...F ... on Q { b } } fragment F on Q { a { c } }", 3, 0, 2, 2},
		// A cycle counts nothing past itself (the validator refuses it).
		// An unused fragment's fields count too: it is validated.
		{"{ a } fragment U on Q { b c }", 3, 0, 1, 1},
		// Two operations: fields add up, root fields and depth are the most.
		{"query A { a b } query B { c { d } }", 4, 0, 2, 2},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.q})
		require.NoError(t, err, tc.q)
		s := measure(doc, false)
		assert.Equal(t, docStats{fields: tc.fields, aliases: tc.aliases, depth: tc.depth, rootFields: tc.rootFields}, s, tc.q)
	}
	// A cycle is found, and counts nothing past itself.
	doc, err := parser.ParseQuery(&ast.Source{Input: "{ ...F } fragment F on Q { a ...G } fragment G on Q { ...F }"})
	require.NoError(t, err)
	assert.Equal(t, docStats{fields: 1, depth: 1, rootFields: 1, cycle: "F"}, measure(doc, false))
	// Fragments that double 40 times saturate instead of overflowing, and
	// the walk visits each fragment once.
	var b strings.Builder
	b.WriteString("{ ...F0 } fragment F40 on Q { a } ")
	for i := 39; i >= 0; i-- {
		fmt.Fprintf(&b, "fragment F%d on Q { ...F%d ...F%d } ", i, i+1, i+1)
	}
	doc, err = parser.ParseQuery(&ast.Source{Input: b.String()})
	require.NoError(t, err)
	s := measure(doc, false)
	assert.Equal(t, saturated, s.fields)
}

func TestRepeats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		q    string
		name string
		n    int
	}{
		{"{ a b a }", "a", 2},
		{"{ x { id id id } y { id } }", "id", 3},
		// Merged from fragments; a fragment spread twice counts once.
		{"{ id ... on Q { id } ...F ...F ...G } fragment F on Q { id } fragment G on Q { id }", "id", 4},
		// Aliases are response names.
		{"{ a: x a: y b: x }", "a", 2},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.q})
		require.NoError(t, err, tc.q)
		name, n := repeats(doc, 100)
		assert.Equal(t, tc.name, name, tc.q)
		assert.Equal(t, tc.n, n, tc.q)
	}
}
