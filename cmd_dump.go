package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
)

// runDump writes every live entry of the embedded store as JSON lines.
func runDump(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr("KCK_DATA_DIR", ".kck-data"), "directory of the embedded store (KCK_DATA_DIR)")
	out := fs.String("out", "-", "file to write; - for standard output")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck dump [flags]\n\nWrites every live product entry of the embedded store (key, value, version,\ntimes) as one JSON object per line; kck load reads it back. The gateway must\nbe stopped: it holds the store's lock.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kck dump: unexpected arguments %v\n", fs.Args())
		return 2
	}
	store, err := bolt.Open(*dataDir, bolt.Options{OpenTimeout: time.Second})
	if err != nil {
		fmt.Fprintln(stderr, "kck dump:", err)
		return 1
	}
	defer store.Close()
	w := stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(stderr, "kck dump:", err)
			return 1
		}
		w = f
	}
	n, err := cache.Dump(context.Background(), store, w)
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
