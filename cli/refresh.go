package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
)

// runRefresh recomputes products now, or queues their refresh for the
// gateways' workers.
func runRefresh(args []string, stdout, stderr io.Writer) int {
	var queued *bool
	return keysCommand("refresh", args, stdout, stderr,
		"Recomputes each product (e.g. title_list/42) and stores it with a new version;\nits dependents are refreshed after it. With --queue, the keys are queued\ninstead, and the workers of the running gateways refresh them. Gateways\nsharing the store see the new values.\n"+storeUsage+"\nA running gateway also takes the GraphQL mutation refresh(key).",
		func(f *flags) { queued = refreshQueueFlag(f) },
		func(ctx context.Context, oc *offlineCache, keys []string, stdout, stderr io.Writer) int {
			if *queued {
				q, err := oc.backend.Queue(queue.Config{})
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
			if !oc.announced("refresh", stderr) {
				return 2
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

func refreshQueueFlag(f *flags) *bool {
	return f.Bool("queue", false, "put the keys in the refresh queue for the gateways' workers instead of computing them here")
}

func refreshFlags(f *flags) {
	keysFlags(f)
	refreshQueueFlag(f)
}

// keysOptions are the flags of a command that takes product keys.
type keysOptions struct {
	store    *storeFlags
	products *productFlags
	prefix   *bool
	timeout  *time.Duration
}

func keysFlags(f *flags) *keysOptions {
	return &keysOptions{
		store:    addStoreFlags(f),
		products: addProductFlags(f),
		prefix:   f.Bool("prefix", false, "each argument is a key prefix (title_list/4, sales/eu/): every stored key that starts with it"),
		timeout:  f.Duration("timeout", 5*time.Minute, "give up after"),
	}
}

// keysCommand is a command that takes product keys (refresh, invalidate):
// it parses the store and product flags and the keys (every key checked
// before any is acted on), opens a cache over the store, and runs act.
func keysCommand(name string, args []string, stdout, stderr io.Writer, doc string,
	extra func(*flags), act func(ctx context.Context, oc *offlineCache, keys []string, stdout, stderr io.Writer) int) int {
	fs := newFlags(name, stderr)
	o := keysFlags(fs)
	extra(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kck %s [flags] KEY|PRODUCT...\n\n%s\n\n%s\n\nFlags:\n", name, doc, selectionUsage)
		fs.PrintDefaults()
	}
	sf, pf, prefix, timeout := o.store, o.products, o.prefix, o.timeout
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
	keys, prefixes, err := selection(oc.prods.Registry(), fs.Args(), *prefix)
	if err != nil {
		fmt.Fprintf(stderr, "kck %s: %v\n", name, err)
		return 2
	}
	if len(prefixes) > 0 {
		matched, err := storedKeys(ctx, oc.backend.Scanner(), prefixes)
		if err != nil {
			fmt.Fprintf(stderr, "kck %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stderr, "kck %s: %d stored keys match %s\n", name, len(matched), strings.Join(prefixes, ", "))
		keys = append(keys, matched...)
	}
	return act(ctx, oc, keys, stdout, stderr)
}

const selectionUsage = `A KEY names one product instance (title_list/42). A PRODUCT name alone
(title_list) stands for every key of that product in the store, and with
--prefix each argument is a key prefix (title_list/4 matches title_list/4 and
title_list/42). Finding stored keys reads the whole store: on Cassandra, a
scan of the cache_entries table.`

// selection splits the arguments into keys (canonical, in order, repeats
// kept: a repeated refresh request counts in the queue) and key prefixes:
// a product name alone is the prefix of all its keys, and with prefix
// every argument is a prefix as it is written.
func selection(reg *primers.Registry, args []string, prefix bool) (keys, prefixes []string, err error) {
	for _, a := range args {
		switch {
		case prefix:
			if a == "" {
				return nil, nil, errors.New("an empty prefix would match every key; name a product or a prefix")
			}
			prefixes = append(prefixes, a)
		case !strings.Contains(a, "/") && reg.Product(a) != nil && len(reg.Product(a).Params) > 0:
			prefixes = append(prefixes, a+"/")
		default:
			key, err := reg.ParseKey(a)
			if err != nil {
				return nil, nil, err
			}
			keys = append(keys, key.String())
		}
	}
	return keys, prefixes, nil
}

// storedKeys lists the keys in store that start with any of prefixes, in
// key order.
func storedKeys(ctx context.Context, sc cache.Scanner, prefixes []string) ([]string, error) {
	var keys []string
	err := sc.Scan(ctx, func(e cache.Entry) error {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Key, p) {
				keys = append(keys, e.Key)
				break
			}
		}
		return nil
	})
	slices.Sort(keys)
	return keys, err
}
