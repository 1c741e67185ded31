// Command costcurve measures how a gateway's cost grows with the number of
// cached products: for each count, products of about 1 KB are warmed into a
// cache over the embedded store, then read at random for a while. It
// reports hit throughput (as a ratio to the smallest count, measured in the
// same run), the share of reads the in-process tier served, RSS, and RSS
// bytes per product held in memory against the product's encoded size.
//
// Each count runs in a child process of its own, so that one count's heap
// does not inflate the next one's RSS.
//
//	costcurve [-keys 1000,100000,1000000] [-tier-mb 512] [-d 3s] [-value-bytes 1024]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kck-go/kck/bench/internal/benchdoc"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/primers"
)

// point is one count's figures, passed from the child as JSON.
type point struct {
	Keys        int     `json:"keys"`
	WarmSeconds float64 `json:"warm_seconds"`
	ReadsPerSec float64 `json:"reads_per_sec"`
	MemoryShare float64 `json:"memory_share"` // reads served by the in-process tier
	Held        int     `json:"held"`         // products in the in-process tier
	RSSBase     int64   `json:"rss_base"`     // before warming
	RSS         int64   `json:"rss"`          // after warming, after a GC
	Encoded     int     `json:"encoded"`      // one product's key and value bytes
}

func main() {
	keys := flag.String("keys", "1000,100000,1000000", "product counts, comma-separated")
	tierMB := flag.Int("tier-mb", 512, "the in-process tier's budget (MiB); counts beyond it read from the store")
	d := flag.Duration("d", 3*time.Second, "reading time per count")
	valueBytes := flag.Int("value-bytes", 1024, "a product's encoded size, about")
	one := flag.Int("one", 0, "internal: measure one count and print it as JSON")
	flag.Parse()
	if *one > 0 {
		p, err := measure(*one, *tierMB, *d, *valueBytes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "costcurve:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(p)
		return
	}
	if err := run(os.Stdout, *keys, *tierMB, *d, *valueBytes); err != nil {
		fmt.Fprintln(os.Stderr, "costcurve:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, keys string, tierMB int, d time.Duration, valueBytes int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "costcurve: %d cores, load average %s, in-process tier %d MiB, products of about %d bytes, %s of reads per count\n\n",
		runtime.NumCPU(), benchdoc.LoadAvg(), tierMB, valueBytes, d)
	fmt.Fprintln(w, "| products | warm (s) | reads/s | x the first count | served from memory | anonymous RSS (MiB) | anonymous RSS bytes per product in memory | encoded bytes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	var first float64
	for _, f := range strings.Split(keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad count %q", f)
		}
		cmd := exec.Command(self, "-one", strconv.Itoa(n), "-tier-mb", strconv.Itoa(tierMB), "-d", d.String(), "-value-bytes", strconv.Itoa(valueBytes))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%d products: %w", n, err)
		}
		var p point
		if err := json.Unmarshal(out, &p); err != nil {
			return fmt.Errorf("%d products: %w", n, err)
		}
		if first == 0 {
			first = p.ReadsPerSec
		}
		perProduct := float64(p.RSS-p.RSSBase) / float64(max(p.Held, 1))
		fmt.Fprintf(w, "| %d | %.1f | %.0f | %.2f | %.0f%% | %.0f | %.0f | %d |\n",
			p.Keys, p.WarmSeconds, p.ReadsPerSec, p.ReadsPerSec/first, 100*p.MemoryShare, float64(p.RSS)/(1<<20), perProduct, p.Encoded)
	}
	fmt.Fprintf(w, "\nload average after: %s\n", benchdoc.LoadAvg())
	return nil
}

func measure(n, tierMB int, d time.Duration, valueBytes int) (point, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "costcurve-")
	if err != nil {
		return point{}, err
	}
	defer os.RemoveAll(dir)
	st, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		return point{}, err
	}
	defer st.Close()
	pad := strings.Repeat("x", max(0, valueBytes-40))
	reg := primers.NewRegistry()
	if err := reg.Register(primers.Product{
		Name:   "p",
		Params: []primers.Param{{Name: "n", Kind: primers.Int}},
		Primer: primers.Func1(func(_ context.Context, i int64) (map[string]any, error) {
			return map[string]any{"n": i, "pad": pad}, nil
		}),
	}); err != nil {
		return point{}, err
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "p/" + strconv.Itoa(i)
	}
	runtime.GC()
	debug.FreeOSMemory()
	p := point{Keys: n, RSSBase: rss()}
	c, err := cache.New(cache.Options{Registry: reg, Store: st, MaxMemoryBytes: uint64(tierMB) << 20})
	if err != nil {
		return point{}, err
	}
	defer c.Close()
	start := time.Now()
	var failed atomic.Int64
	c.Warm(ctx, keys, cache.WarmOptions{OnKey: func(_ string, err error) {
		if err != nil {
			failed.Add(1)
		}
	}})
	p.WarmSeconds = time.Since(start).Seconds()
	if f := failed.Load(); f > 0 {
		return point{}, fmt.Errorf("%d keys failed to warm", f)
	}
	r, err := c.Get(ctx, keys[0])
	if err != nil {
		return point{}, err
	}
	p.Encoded = len(keys[0]) + len(r.Entry.Value)

	var reads, fromMemory atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
			var nr, nm int64
			for time.Now().Before(stop) {
				for range 256 {
					r, err := c.Get(ctx, keys[rng.IntN(n)])
					if err != nil {
						failed.Add(1)
						continue
					}
					nr++
					if r.Tier == cache.TierMemory {
						nm++
					}
				}
			}
			reads.Add(nr)
			fromMemory.Add(nm)
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return point{}, fmt.Errorf("%d reads failed", f)
	}
	p.ReadsPerSec = float64(reads.Load()) / d.Seconds()
	p.MemoryShare = float64(fromMemory.Load()) / float64(max(reads.Load(), 1))
	for _, k := range keys {
		if _, ok := c.Peek(k); ok {
			p.Held++
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	p.RSS = rss()
	return p, nil
}

// rss is the process's anonymous resident memory in bytes, from /proc:
// the heap and stacks, without the store file's mapped pages (bbolt maps
// its file; those pages are the page cache's, shared and reclaimable).
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
