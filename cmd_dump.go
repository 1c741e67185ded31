package main

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
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "kck dump: one file at most, got %v\n", fs.Args())
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	store, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kck dump:", err)
		return 1
	}
	defer store.Close()
	scanner, ok := store.(cache.Scanner)
	if !ok {
		fmt.Fprintf(stderr, "kck dump: the %s store cannot list its entries\n", sf.kind)
		return 1
	}
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
