package cli

import (
	"fmt"
	"io"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/graph"
)

func runSchema(args []string, stdout, stderr io.Writer) int { return Schema(args, stdout, stderr, nil) }

// Schema is `kck schema` for a program of its own (see
// examples/own-module): it prints the GraphQL schema the gateway serves,
// with's Schema applied, in SDL (graph.SDL): what introspection shows,
// subscription fields included, for client code generators when
// --production turns introspection off. It returns the exit code.
func Schema(args []string, stdout, stderr io.Writer, with func(*app.Config)) int {
	f := newFlags("schema", stderr)
	f.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck schema > schema.graphql\n\nPrints the GraphQL schema the gateway serves (SDL), as introspection shows it:\nfor client code generators (GraphQL Code Generator) where introspection is off.")
		f.PrintDefaults()
	}
	if err := f.parse(args); err != nil {
		return parseCode(err)
	}
	if f.NArg() > 0 {
		fmt.Fprintf(stderr, "kck schema: unexpected arguments %v\n", f.Args())
		return 2
	}
	cfg := app.Defaults()
	if with != nil {
		with(&cfg)
	}
	if _, err := io.WriteString(stdout, graph.SDL(graph.Served(cfg.Schema))); err != nil {
		fmt.Fprintln(stderr, "kck schema:", err)
		return 1
	}
	return 0
}
