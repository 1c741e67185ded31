package cli

import (
	"context"
	"fmt"
	"io"
)

// runInvalidate removes products from the store; the next read recomputes
// them.
func runInvalidate(args []string, stdout, stderr io.Writer) int {
	return keysCommand("invalidate", args, stdout, stderr,
		"Removes each product (e.g. title_list/42) from the store; the next read\ncomputes it again, and its dependents are refreshed. Gateways sharing the\nstore drop their in-process copies.\n"+storeUsage+"\nA running gateway also takes the GraphQL mutation invalidate(key).",
		func(*flags) {},
		func(ctx context.Context, oc *offlineCache, keys []string, stdout, stderr io.Writer) int {
			if !oc.announced("invalidate", stderr) {
				return 2
			}
			for _, k := range keys {
				if err := oc.c.Invalidate(ctx, k); err != nil {
					fmt.Fprintf(stderr, "kck invalidate: %s: %v\n", k, err)
					return 1
				}
			}
			fmt.Fprintf(stdout, "%d keys invalidated\n", len(keys))
			return 0
		})
}
