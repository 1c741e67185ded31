package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/graph/directives"
	"github.com/kck-go/kck/source/sqlproduct"
)

// runCheck: `kck check` prepares every SQL product against the database and
// compares its result columns with the GraphQL type its field returns.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fset := newFlags("check", stderr)
	url, dir := checkFlags(fset)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck check [flags]\n\nPrepares every SQL product's query (without running it) and reports, per\nproduct, GraphQL fields with no column or a column of another type.\nExit 1 when something does not match.\n\nFlags:")
		fset.PrintDefaults()
	}
	if err := fset.parse(args); err != nil {
		return parseCode(err)
	}
	if *url == "" {
		fmt.Fprintln(stderr, "kck check: set KCK_POSTGRES_URL or --postgres-url")
		return 2
	}
	var fsys fs.FS = demo.SQL()
	if *dir != "" {
		fsys = os.DirFS(*dir)
	}
	decls, err := sqlproduct.LoadFS(fsys)
	if err != nil {
		fmt.Fprintln(stderr, "kck check:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		fmt.Fprintln(stderr, "kck check:", err)
		return 1
	}
	defer conn.Close(ctx)
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	problems := 0
	// The typed fields of the products no schema line declares, made from
	// their statements (what kck serve --sql-dir serves).
	api, apiErr := sqlproduct.DescribeAPI(ctx, conn, decls)
	typed := map[string]string{}
	for _, ap := range api.Products {
		sig := ap.Field
		if len(ap.Args) > 0 {
			args := make([]string, len(ap.Args))
			for i, a := range ap.Args {
				args[i] = a.Name + ": " + a.Type
			}
			sig += "(" + strings.Join(args, ", ") + ")"
		}
		typed[ap.Product.Name] = sig + ": " + ap.Type
	}
	for _, d := range sqlproduct.Describe(ctx, conn, decls) {
		p := d.Product
		if d.Err != nil {
			fmt.Fprintf(stdout, "%s: %s: query does not prepare: %v\n", p.File, p.Name, d.Err)
			problems++
			continue
		}
		field := boundField(schema, p.Name)
		if field == nil {
			if sig, ok := typed[p.Name]; ok {
				fmt.Fprintf(stdout, "%s: %s: ok (%s, typed from its statement)\n", p.File, p.Name, sig)
			}
			continue
		}
		msgs := compare(schema, field, p, d.Columns)
		if len(msgs) == 0 {
			fmt.Fprintf(stdout, "%s: %s: ok (%s)\n", p.File, p.Name, field.Type.String())
			continue
		}
		for _, m := range msgs {
			fmt.Fprintf(stdout, "%s: %s: %s\n", p.File, p.Name, m)
		}
		problems += len(msgs)
	}
	if apiErr != nil {
		// A statement that does not prepare was reported above.
		for _, line := range strings.Split(apiErr.Error(), "\n") {
			if !strings.Contains(line, "does not prepare") {
				fmt.Fprintln(stdout, line)
				problems++
			}
		}
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s)\n", problems)
		return 1
	}
	return 0
}

func checkFlags(f *flags) (url, dir *string) {
	url, dir = new(string), new(string)
	postgresFlag(f, url, "database")
	sqlDirFlag(f, dir)
	return url, dir
}

func boundField(schema *ast.Schema, product string) *ast.FieldDefinition {
	for _, f := range schema.Query.Fields {
		if d := f.Directives.ForName(directives.Product); d != nil && d.Arguments.ForName("name").Value.Raw == product {
			return f
		}
	}
	return nil
}

// compare lists the mismatches between a product's columns and its field.
func compare(schema *ast.Schema, f *ast.FieldDefinition, p *sqlproduct.Product, cols []sqlproduct.Column) []string {
	var msgs []string
	t := f.Type
	isList := t.Elem != nil
	if isList {
		t = t.Elem
	}
	if p.Filter != "" {
		return nil // the filter reshapes the result; only the query is checked
	}
	switch {
	case isList && p.Result != "list":
		msgs = append(msgs, fmt.Sprintf("GraphQL %s is a list but kck:result is %s", f.Type.String(), p.Result))
	case !isList && p.Result == "list":
		msgs = append(msgs, fmt.Sprintf("GraphQL %s is not a list but kck:result is list", f.Type.String()))
	}
	def := schema.Types[t.NamedType]
	if def == nil || def.Kind != ast.Object {
		if p.Result == "value" && len(cols) == 1 && !fits(t.NamedType, cols[0].Type) {
			msgs = append(msgs, fmt.Sprintf("GraphQL %s but column %s is %s", t.NamedType, cols[0].Name, cols[0].Type))
		}
		return msgs
	}
	byName := map[string]sqlproduct.Column{}
	for _, c := range cols {
		byName[c.Name] = c
	}
	for _, gf := range def.Fields {
		c, ok := byName[gf.Name]
		switch {
		case !ok:
			msgs = append(msgs, fmt.Sprintf("GraphQL %s.%s has no column %q (columns: %s)", def.Name, gf.Name, gf.Name, names(cols)))
		case !fits(gf.Type.NamedType, c.Type) || gf.Type.Elem != nil:
			msgs = append(msgs, fmt.Sprintf("GraphQL %s.%s is %s but column %s is %s", def.Name, gf.Name, gf.Type.String(), c.Name, c.Type))
		}
	}
	return msgs
}

func names(cols []sqlproduct.Column) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.Name
	}
	return strings.Join(s, ", ")
}

// fits reports whether values of a PostgreSQL type encode as the GraphQL
// scalar.
func fits(gql, pg string) bool {
	switch gql {
	case "Int":
		return pg == "int2" || pg == "int4" || pg == "int8"
	case "Float":
		return pg == "float4" || pg == "float8" || pg == "numeric" || pg == "int2" || pg == "int4" || pg == "int8"
	case "String", "ID":
		return pg == "text" || pg == "varchar" || pg == "bpchar" || pg == "date" || pg == "uuid" || pg == "name"
	case "Boolean":
		return pg == "bool"
	case "Time":
		return pg == "timestamptz" || pg == "timestamp"
	case "JSON":
		return true
	}
	return false
}
