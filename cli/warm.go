package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kck-go/kck/scheduler"
)

// runWarm computes (or finds in the store) every key the products declare
// to warm, as a gateway does at boot, and leaves them in the store.
func runWarm(args []string, stdout, stderr io.Writer) int {
	fs, sf := storeCommand("warm", "Usage: kck warm [flags] [PRODUCT...]\n\nComputes every key the products declare to warm (their warm keys, warm\nqueries and domain members), or only those of the named products, and stores\nthem, as a gateway does at boot; keys already stored and fresh are left as\nthey are. Progress goes to standard error.\n"+storeUsage, stderr)
	pf, timeout := warmExtraFlags(fs)
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	log, _ := newLogger(stderr, "text", "info")
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	oc, err := openOfflineCache(ctx, sf, pf, log)
	if err != nil {
		fmt.Fprintln(stderr, "kck warm:", err)
		return 1
	}
	defer oc.close()
	for _, p := range fs.Args() {
		if oc.prods.Registry().Product(p) == nil {
			fmt.Fprintf(stderr, "kck warm: no product named %q\n", p)
			return 2
		}
	}
	s, err := scheduler.New(scheduler.Options{Cache: oc.c, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "kck warm:", err)
		return 1
	}
	defer s.Close()
	rep, err := s.Warm(ctx, fs.Args()...)
	what := "every product"
	if fs.NArg() > 0 {
		what = strings.Join(fs.Args(), ", ")
	}
	fmt.Fprintf(stdout, "kck warm: %s: %d keys, %d failed, in %s\n", what, rep.Keys, rep.Failed, rep.Elapsed.Round(time.Millisecond))
	if err != nil {
		fmt.Fprintln(stderr, "kck warm:", err)
		return 1
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

func warmExtraFlags(f *flags) (*productFlags, *time.Duration) {
	return addProductFlags(f), f.Duration("timeout", 30*time.Minute, "give up after")
}

func warmFlags(f *flags) {
	addStoreFlags(f)
	warmExtraFlags(f)
}
