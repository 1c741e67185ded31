package productfield_test

import (
	"testing"

	"github.com/99designs/gqlgen/codegen/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph/productfield"
)

const directives = `
directive @updater(name: String!) on FIELD_DEFINITION
directive @affected(name: String!) on FIELD_DEFINITION
directive @updateResult on FIELD_DEFINITION
type Product { key: String! }
type Title { id: Int! }
type Query { x: Int }
`

func loadConfig(t *testing.T, schema string) *config.Config {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Sources = []*ast.Source{{Name: "schema.graphqls", Input: directives + schema}}
	require.NoError(t, cfg.LoadSchema())
	return cfg
}

// A payload type is bound to graph.Payload, so that modelgen writes no
// struct for it and each of its fields gets a resolver from the plugin.
func TestMutateConfigBindsPayloads(t *testing.T) {
	cfg := loadConfig(t, `
type Mutation { addTitle(authorId: Int!): AddTitlePayload! @updater(name: "add_title") }
type AddTitlePayload {
  title: Title @updateResult
  titleList: [Title!] @affected(name: "title_list")
  products: [Product!]!
}`)
	require.NoError(t, productfield.Plugin{}.MutateConfig(cfg))
	assert.Equal(t, config.StringList{productfield.PayloadModel}, cfg.Models["AddTitlePayload"].Model)
	assert.NotContains(t, cfg.Models, "Title", "only payloads are bound")
}

// What the plugin could not resolve fails the generation, with the field.
func TestMutateConfigRefusesWhatItCannotResolve(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`type Mutation { a(x: Int!): P! @updater(name: "u") }
		  type P { count: Int! }`, "payload field P.count"},
		{`type Mutation { a(x: Int!): P! @updater(name: "u") }
		  type P { t: [Title!]! @affected(name: "title_list") }`, "P.t: an @affected field is nullable"},
		{`type Mutation { a(x: Int!): P @updater(name: "u") }
		  type P { t: Title @updateResult }`, "typed mutation a: it returns its payload object type, as P! (non-null)"},
		{`type Mutation { a(x: Int!): Int! @updater(name: "u") }`, "payload Int is not an object type"},
		{`type Mutation { a(x: Int!): P! @updater(name: "") }
		  type P { t: Title @updateResult }`, "@updater needs a name"},
	} {
		err := productfield.Plugin{}.MutateConfig(loadConfig(t, tc.schema))
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
	}
}
