package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/graph"
)

func runSchema(args []string, stdout, stderr io.Writer) int { return Schema(args, stdout, stderr, nil) }

// Schema is `kck schema` for a program of its own (see
// examples/own-module): it prints the GraphQL schema the gateway serves,
// with's Schema applied, in SDL (graph.SDL): what introspection shows,
// subscription fields included, for client code generators when
// --production turns introspection off. With --postgres-url and SQL
// products of its own (--sql-dir, or the program's embedded files), their
// typed fields are in it, as the gateway serves them: the statements are
// prepared on the database for their types (nothing runs). It returns the
// exit code.
func Schema(args []string, stdout, stderr io.Writer, with func(*app.Config)) int {
	f := newFlags("schema", stderr)
	pf := addProductFlags(f)
	f.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck schema > schema.graphql\n\nPrints the GraphQL schema the gateway serves (SDL), as introspection shows it:\nfor client code generators (GraphQL Code Generator) where introspection is off.\nWith --postgres-url and --sql-dir, the SQL products' typed fields are in it\n(their statements are prepared on the database for their types; nothing runs).\n\nFlags:")
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
	cfg.PostgresURL, cfg.SQLDir = pf.postgresURL, pf.sqlDir
	if with != nil {
		with(&cfg)
	}
	sdl, err := schemaSDL(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kck schema:", err)
		return 1
	}
	if _, err := io.WriteString(stdout, sdl); err != nil {
		fmt.Fprintln(stderr, "kck schema:", err)
		return 1
	}
	return 0
}

// schemaSDL is the schema a gateway of cfg serves: the compiled one, and
// with a database and SQL products of its own, their typed fields.
func schemaSDL(cfg app.Config, stderr io.Writer) (string, error) {
	if cfg.PostgresURL == "" || (cfg.SQLDir == "" && cfg.SQL == nil) {
		return graph.SDL(graph.Served(cfg.Schema)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	prods, err := app.LoadProducts(ctx, app.ProductsConfig{DataDir: cfg.DataDir, PostgresURL: cfg.PostgresURL, SQLDir: cfg.SQLDir, SQL: cfg.SQL, Register: cfg.Register}, log)
	if err != nil {
		return "", err
	}
	defer prods.Close()
	r := &graph.Resolver{}
	es := graph.Executable(cfg.Schema, r)
	if ext := app.Extend(prods.API(), prods.Registry(), cfg.Schema == nil); ext != nil {
		if es, err = ext(es, r); err != nil {
			return "", err
		}
	}
	return graph.SDL(es.Schema()), nil
}
