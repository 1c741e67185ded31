package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kck-go/kck/queue"
)

// runQueue inspects and repairs the refresh queue in the store.
func runQueue(args []string, stdout, stderr io.Writer) int {
	fs, sf := storeCommand("queue", `Usage: kck queue [flags] [stats | show KEY... | retry KEY... | remove KEY... | enqueue KEY...]

Inspects and repairs the refresh queue, which lives in the store and is shared
by every gateway on it. `+storeUsage+`

  stats          depth, claims, retries waiting, poisoned keys, and the keys
                 the next claim takes (the default)
  show KEY...    one row per key: requests, attempts, last error
  retry KEY...   give poisoned keys a fresh start (queued again, attempts reset)
  remove KEY...  drop keys from the queue
  enqueue KEY... queue refreshes, drained when the gateway runs`, stderr)
	next := queueNextFlag(fs)
	if code, ok := sf.parse(fs, args, stderr); !ok {
		return code
	}
	cmd, keys := "stats", []string(nil)
	if fs.NArg() > 0 {
		cmd, keys = fs.Arg(0), fs.Args()[1:]
	}
	switch cmd {
	case "stats":
		if len(keys) > 0 {
			fmt.Fprintln(stderr, "kck queue: stats takes no keys")
			return 2
		}
	case "show", "retry", "remove", "enqueue":
		if len(keys) == 0 {
			fmt.Fprintf(stderr, "kck queue: %s needs at least one key\n", cmd)
			return 2
		}
	default:
		fmt.Fprintf(stderr, "kck queue: unknown action %q\n", cmd)
		fs.Usage()
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kck queue:", err)
		return 1
	}
	defer b.Close()
	q, err := b.Queue(queue.Config{})
	if err != nil {
		fmt.Fprintln(stderr, "kck queue:", err)
		return 1
	}
	if err := queueAction(ctx, q, cmd, keys, *next, stdout); err != nil {
		fmt.Fprintln(stderr, "kck queue:", err)
		return 1
	}
	return 0
}

func queueNextFlag(f *flags) *int {
	return f.Int("next", 20, "with stats: how many of the next keys to list")
}

func queueFlags(f *flags) {
	addStoreFlags(f)
	queueNextFlag(f)
}

func queueAction(ctx context.Context, q queue.Store, cmd string, keys []string, next int, w io.Writer) error {
	now := time.Now()
	switch cmd {
	case "stats":
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "depth %d (claimed %d, waiting to retry %d), oldest request %s ago, most requests %d\n",
			st.Depth, st.Claimed, st.Delayed, st.OldestAge(now).Round(time.Millisecond), st.MaxRequests)
		fmt.Fprintf(w, "poisoned %d\n", st.Poisoned)
		for _, k := range st.PoisonedKeys {
			fmt.Fprintln(w, "  "+k)
		}
		if keys := st.Next(next); len(keys) > 0 {
			fmt.Fprintf(w, "next %d\n", len(keys))
			for _, k := range keys {
				fmt.Fprintln(w, "  "+k)
			}
		}
	case "show":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tREQUESTS\tFIRST REQUESTED\tWORKER\tATTEMPTS\tPOISONED\tLAST ERROR")
		for _, k := range keys {
			it, err := q.Get(ctx, k)
			if errors.Is(err, queue.ErrNotFound) {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tnot queued\n", k)
				continue
			}
			if err != nil {
				return err
			}
			worker := it.Worker
			if !it.Claimed(now) {
				worker = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%t\t%s\n", it.Key, it.Requests,
				it.FirstRequested.Format(time.RFC3339), worker, it.Attempts, it.Poisoned, it.LastError)
		}
		return tw.Flush()
	case "retry":
		for _, k := range keys {
			if err := q.Remove(ctx, k); err != nil {
				return err
			}
		}
		if err := q.EnqueueMany(ctx, keys, now); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d keys queued again\n", len(keys))
	case "remove":
		for _, k := range keys {
			if err := q.Remove(ctx, k); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "%d keys removed\n", len(keys))
	case "enqueue":
		if err := q.EnqueueMany(ctx, keys, now); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d keys queued\n", len(keys))
	}
	return nil
}
