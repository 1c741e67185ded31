package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kck-go/kck/cache"
)

// runDump writes every live entry of the store as JSON lines.
func runDump(args []string, stdout, stderr io.Writer) int {
	fs, sf := storeCommand("dump", "Usage: kck dump [flags] [FILE]\n\nWrites every live product entry of the store (key, value, version, times) as\none JSON object per line to FILE (or standard output, or -); kck load reads\nit back, identical.\n"+storeUsage, stderr)
	timeout := dumpTimeoutFlag(fs)
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "kck dump: one file at most, got %v\n", fs.Args())
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	b, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kck dump:", err)
		return 1
	}
	defer b.Close()
	scanner := b.Scanner()
	w := stdout
	var f *os.File
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		if f, err = os.Create(fs.Arg(0)); err != nil {
			fmt.Fprintln(stderr, "kck dump:", err)
			return 1
		}
		w = f
	}
	n, err := cache.Dump(ctx, scanner, w)
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintln(stderr, "kck dump:", err)
		return 1
	}
	fmt.Fprintf(stderr, "kck dump: %d entries\n", n)
	return 0
}

// dumpTimeoutFlag is the timeout of kck dump and kck load.
func dumpTimeoutFlag(f *flags) *time.Duration {
	return f.Duration("timeout", 10*time.Minute, "give up after")
}

func dumpFlags(f *flags) {
	addStoreFlags(f)
	dumpTimeoutFlag(f)
}
