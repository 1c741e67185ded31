package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/internal/browsertest"
)

func TestSchemaCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // lines that must be there
		stderr string
	}{
		{name: "prints the served schema", args: []string{"schema"}, stdout: []string{
			"type Query {", "type Subscription {", "  titleList(authorId: Int!): [Title!]",
			"  product(key: String!, sinceVersion: String): Product!", "directive @product(name: String!) on FIELD_DEFINITION",
			"scalar Time",
		}},
		{name: "help", args: []string{"schema", "--help"}, stderr: "Usage: kck schema"},
		{name: "no arguments", args: []string{"schema", "extra"}, code: 2, stderr: "unexpected arguments [extra]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, tc.code, run(tc.args, &stdout, &stderr), stderr.String())
			lines := strings.Split(stdout.String(), "\n")
			for _, l := range tc.stdout {
				assert.Contains(t, lines, l)
			}
			assert.Contains(t, stderr.String(), tc.stderr)
		})
	}
}

// The SDL loads into the schema the gateway serves: gqlparser reads it back
// (the gateway's own parser), and it prints the same again; no directive
// application but the specification's is left (@product and the like are the
// server's), and every field of every served type is there with its type.
func TestSchemaSDLIsTheServedSchema(t *testing.T) {
	t.Parallel()
	served := graph.Served(nil)
	sdl := graph.SDL(served)
	loaded, err := gqlparser.LoadSchema(&ast.Source{Name: "kck schema", Input: sdl})
	require.NoError(t, err)
	assert.Equal(t, sdl, graph.SDL(loaded), "printing what was loaded gives the same text")
	assert.NotContains(t, sdl, "@product(name: \"", "directive applications are not printed")
	for name, def := range served.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		got := loaded.Types[name]
		require.NotNil(t, got, "type %s", name)
		assert.Equal(t, def.Kind, got.Kind, name)
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			g := got.Fields.ForName(f.Name)
			require.NotNil(t, g, "%s.%s", name, f.Name)
			assert.Equal(t, f.Type.String(), g.Type.String(), "%s.%s", name, f.Name)
			assert.Len(t, g.Arguments, len(f.Arguments), "%s.%s", name, f.Name)
		}
	}
}

// What `kck schema` prints is what introspection of a running gateway shows,
// compared by graphql-js (browser/schema-sdl.mjs): GraphQL Code Generator
// gets the same schema from the file as from an introspection query.
func TestSchemaMatchesIntrospection(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"schema"}, &stdout, &stderr), stderr.String())
	file := filepath.Join(t.TempDir(), "schema.graphql")
	require.NoError(t, os.WriteFile(file, stdout.Bytes(), 0o644))
	base, stop := startServe(t, testConfig(t, t.TempDir()))
	t.Cleanup(func() { require.NoError(t, stop()) })
	out := browsertest.Run(t, t.Context(), "schema-sdl.mjs", base, file)
	assert.Contains(t, out, "ok: kck schema prints what introspection shows")
}

// With a database and a folder of SQL products, kck schema prints their
// typed fields, as the gateway serves them: the demo's fields, which that
// gateway does not serve, are left out; the SDL loads back.
func TestSchemaCommandSQLDir(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "by_year.sql"), []byte(
		"-- kck:product by_year(year int)\n-- kck:type Title\nSELECT id, author_id AS \"authorId\", title, year FROM titles WHERE year = :year"), 0o644))
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"schema", "--postgres-url", url, "--sql-dir", dir}, &stdout, &stderr), stderr.String())
	lines := strings.Split(stdout.String(), "\n")
	for _, want := range []string{"  byYear(year: Int!): [Title!]", "type Title {", "  product(key: String!): Product"} {
		assert.Contains(t, lines, want)
	}
	for _, gone := range []string{"  titleList(authorId: Int!): [Title!]", "type AuthorStats {"} {
		assert.NotContains(t, lines, gone)
	}
	_, err := gqlparser.LoadSchema(&ast.Source{Name: "kck schema", Input: stdout.String()})
	require.NoError(t, err)
}
