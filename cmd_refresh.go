package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kck-go/kck/queue"
)

// runRefresh recomputes products now, or queues their refresh for the
// gateways' workers.
func runRefresh(args []string, stdout, stderr io.Writer) int {
	var queued bool
	return keysCommand("refresh", args, stdout, stderr,
		"Recomputes each product (e.g. title_list/42) and stores it with a new version;\nits dependents are refreshed after it. With --queue, the keys are queued\ninstead, and the workers of the running gateways refresh them. Gateways\nsharing the store see the new values.\n"+storeUsage+"\nA running gateway also takes the GraphQL mutation refresh(key).",
		func(fs *flag.FlagSet) {
			fs.BoolVar(&queued, "queue", false, "put the keys in the refresh queue for the gateways' workers instead of computing them here")
		},
		func(ctx context.Context, oc *offlineCache, keys []string, stdout, stderr io.Writer) int {
			if queued {
				q, err := openQueue(oc.store, queue.Config{})
				if err == nil {
					err = q.EnqueueMany(ctx, keys, time.Now())
				}
				if err != nil {
					fmt.Fprintln(stderr, "kck refresh:", err)
					return 1
				}
				fmt.Fprintf(stdout, "%d keys queued\n", len(keys))
				return 0
			}
			code := 0
			for _, k := range keys {
				r, err := oc.c.Refresh(ctx, k)
				if err != nil {
					fmt.Fprintf(stderr, "kck refresh: %s: %v\n", k, err)
					code = 1
					continue
				}
				fmt.Fprintf(stdout, "%s version %d computed at %s\n", k, r.Version, r.ComputedAt.UTC().Format(time.RFC3339Nano))
			}
			return code
		})
}

// keysCommand is a command that takes product keys (refresh, invalidate):
// it parses the store and product flags and the keys (every key checked
// before any is acted on), opens a cache over the store, and runs act.
func keysCommand(name string, args []string, stdout, stderr io.Writer, doc string,
	flags func(*flag.FlagSet), act func(ctx context.Context, oc *offlineCache, keys []string, stdout, stderr io.Writer) int) int {
	fs, sf := storeCommand(name, fmt.Sprintf("Usage: kck %s [flags] KEY...\n\n%s", name, doc), stderr)
	pf := addProductFlags(fs)
	flags(fs)
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after")
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "kck %s: name at least one key\n", name)
		fs.Usage()
		return 2
	}
	log, _ := newLogger(stderr, "text", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	oc, err := openOfflineCache(ctx, sf, pf, log)
	if err != nil {
		fmt.Fprintf(stderr, "kck %s: %v\n", name, err)
		return 1
	}
	defer oc.close()
	keys := make([]string, 0, fs.NArg())
	for _, k := range fs.Args() {
		key, err := oc.prods.reg.ParseKey(k)
		if err != nil {
			fmt.Fprintf(stderr, "kck %s: %v\n", name, err)
			return 2
		}
		keys = append(keys, key.String())
	}
	return act(ctx, oc, keys, stdout, stderr)
}
