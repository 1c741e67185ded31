package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/kck-go/kck/cache"
)

// runLoad puts the entries of a dump into the embedded store or Cassandra.
func runLoad(args []string, stdout, stderr io.Writer) int {
	fs, sf := storeCommand("load", "Usage: kck load [flags] [FILE]\n\nPuts the entries of a kck dump (FILE, or standard input) into the store,\nkeeping their versions: an entry older than the stored one stays out, so\nloading twice is harmless. A dump of one store loads into the other.\n"+storeUsage, stderr)
	timeout := dumpTimeoutFlag(fs)
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "kck load: one file at most, got %v\n", fs.Args())
		return 2
	}
	var r io.Reader = os.Stdin
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "kck load:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	b, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kck load:", err)
		return 1
	}
	defer b.Close()
	n, err := cache.Load(ctx, b.Store(), r)
	if err != nil {
		fmt.Fprintln(stderr, "kck load:", err)
		return 1
	}
	fmt.Fprintf(stdout, "kck load: %d entries read\n", n)
	return 0
}

func loadFlags(f *flags) { dumpFlags(f) }
