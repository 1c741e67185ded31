package cli

import (
	"bytes"
	"fmt"
	"io"

	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/kck-go/kck/graph"
)

// runSchema prints the GraphQL schema the gateway serves (KCK's own: the
// demo's products, their subscriptions and typed mutations), as SDL: what
// a front-end's tools (GraphQL Code Generator, Apollo's manifest
// generator) read at build time, with no gateway running.
//
// A minimal form of the command issue 26 asks for: KCK's schema only (an
// application's own module prints its own with its gqlgen package).
func runSchema(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("schema", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck schema\n\nPrints the GraphQL schema the gateway serves, as SDL (for GraphQL Code Generator and the like):\n\n  kck schema > schema.graphql")
		fs.PrintDefaults()
	}
	if err := fs.parse(args); err != nil {
		return parseCode(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kck schema: unexpected arguments %v\n", fs.Args())
		return 2
	}
	var b bytes.Buffer
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema())
	_, _ = stdout.Write(b.Bytes())
	return 0
}
