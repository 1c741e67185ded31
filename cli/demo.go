package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// runDemo: `kck demo load` puts the demo dataset into Postgres.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	url := demoFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck demo load [flags]\n\nCreates the tables authors, titles and sales, fills them with the demo dataset\n(replacing what they held) and installs the change triggers. Then start the\ngateway with the same KCK_POSTGRES_URL to serve the demo products from SQL.\n\nFlags:")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "load" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs.Usage()
			return 0
		}
		fs.Usage()
		return 2
	}
	if err := fs.parse(args[1:]); err != nil {
		return parseCode(err)
	}
	if *url == "" {
		fmt.Fprintln(stderr, "kck demo load: set KCK_POSTGRES_URL or --postgres-url (make postgres-up prints one)")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := source.Open(ctx, *url)
	if err != nil {
		fmt.Fprintln(stderr, "kck demo load:", err)
		return 1
	}
	defer pool.Close()
	ds := demo.NewDataset()
	if err := demo.Load(ctx, pool, ds); err != nil {
		fmt.Fprintln(stderr, "kck demo load:", err)
		return 1
	}
	decls, err := sqlproduct.LoadFS(demo.SQL())
	if err == nil {
		err = source.Migrate(ctx, pool, decls.Tables())
	}
	if err != nil {
		fmt.Fprintln(stderr, "kck demo load:", err)
		return 1
	}
	fmt.Fprintf(stdout, "loaded %d authors, %d titles, %d sales; change triggers installed\n", len(ds.Authors()), len(ds.Titles()), len(ds.Sales()))
	return 0
}

// demoFlags are kck demo load's (they follow the word load).
func demoFlags(f *flags) *string {
	url := new(string)
	postgresFlag(f, url, "database")
	return url
}
