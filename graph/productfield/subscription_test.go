package productfield_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph/productfield"
)

const base = `
directive @product(name: String!) on FIELD_DEFINITION
type T { id: Int! }
type Query {
  list(authorId: Int!, n: Int): [T!] @product(name: "list")
  plain: Int
}
`

func load(t *testing.T, extra string) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "s.graphqls", Input: base + extra})
	require.NoError(t, err)
	return s
}

// Each @product query field gets a subscription of the same name,
// arguments, type and directive; other fields get none.
func TestSubscriptionsMirrorProductFields(t *testing.T) {
	schema := load(t, `type Subscription { product(key: String!): Int }`)
	srcs, err := productfield.Subscriptions{}.InjectSourcesLate(schema)
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	assert.Equal(t, productfield.SubscriptionsSource, srcs[0].Name)

	full, gerr := gqlparser.LoadSchema(&ast.Source{Name: "s.graphqls", Input: base + `type Subscription { product(key: String!): Int }`}, srcs[0])
	require.Nil(t, gerr)
	f := full.Subscription.Fields.ForName("list")
	require.NotNil(t, f)
	assert.Equal(t, "[T!]", f.Type.String())
	require.Len(t, f.Arguments, 2)
	assert.Equal(t, "authorId", f.Arguments[0].Name)
	assert.Equal(t, "Int!", f.Arguments[0].Type.String())
	assert.Equal(t, "n", f.Arguments[1].Name)
	d := f.Directives.ForName(productfield.DirectiveName)
	require.NotNil(t, d)
	assert.Equal(t, "list", d.Arguments.ForName("name").Value.Raw)
	assert.Nil(t, full.Subscription.Fields.ForName("plain"))
	assert.NotNil(t, full.Subscription.Fields.ForName("product"), "the hand-written field stays")
}

func TestSubscriptionWrittenByHandIsRefused(t *testing.T) {
	_, err := productfield.Subscriptions{}.InjectSourcesLate(load(t, `type Subscription { list(authorId: Int!, n: Int): [T!] }`))
	assert.ErrorContains(t, err, "written by hand")
}

func TestSubscriptionTypeWrittenWhenAbsent(t *testing.T) {
	srcs, err := productfield.Subscriptions{}.InjectSourcesLate(load(t, ""))
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	full, gerr := gqlparser.LoadSchema(&ast.Source{Name: "s.graphqls", Input: base}, srcs[0])
	require.Nil(t, gerr)
	require.NotNil(t, full.Subscription)
	assert.NotNil(t, full.Subscription.Fields.ForName("list"))
}
