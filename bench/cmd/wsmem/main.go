// Command wsmem measures what an open subscription costs a gateway: it starts
// the kck binary (-kck) on the embedded store with the demo, reads the
// process's anonymous RSS and goroutine count, opens -conns WebSockets
// (graphql-transport-ws), each with one subscription to an author's
// title_list, waits for every first message, and reads them again. Prints
// the cost per connection. For docs/deploy.md's sizing table.
//
//	go build -o /tmp/kck . && go run ./bench/cmd/wsmem -kck /tmp/kck [-conns 2000]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

func main() {
	bin := flag.String("kck", "", "the kck binary")
	conns := flag.Int("conns", 2000, "WebSocket connections, one subscription each")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: wsmem -kck PATH [-conns N]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	check(ln.Close())
	dir, err := os.MkdirTemp("", "wsmem-")
	check(err)
	defer os.RemoveAll(dir)
	cmd := exec.Command(*bin, "serve", "--addr", addr, "--data-dir", dir, "--log-level", "warn",
		"--max-websocket-connections", "-1", "--max-subscriptions", "-1", "--drain-delay", "0s")
	cmd.Env = append(os.Environ(), "KCK_STORE=embedded", "KCK_POSTGRES_URL=")
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	waitReady(base)
	// Every author's title_list is read once first, so that the figures
	// below are the connections' alone, not the products they read.
	for a := 1; a <= 300; a++ {
		resp, err := http.Get(fmt.Sprintf("%s/fetch?key=title_list/%d", base, a))
		check(err)
		resp.Body.Close()
	}
	runtime.GC()
	time.Sleep(time.Second) // let the gateway settle after warming
	rss0, g0 := rssAnon(cmd.Process.Pid), goroutines(base)

	ctx := context.Background()
	open := make([]*websocket.Conn, *conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	start := time.Now()
	for i := range open {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			open[i] = subscribe(ctx, base, 1+i%300)
		})
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(2 * time.Second) // the gateway's GC and idle buffers settle
	rss1, g1 := rssAnon(cmd.Process.Pid), goroutines(base)
	fmt.Printf("%d WebSockets with a subscription each, opened in %s\n", *conns, took.Round(time.Millisecond))
	fmt.Printf("anonymous RSS %.1f MiB -> %.1f MiB: %.1f KiB per connection\n",
		mib(rss0), mib(rss1), float64(rss1-rss0)/1024/float64(*conns))
	fmt.Printf("goroutines %d -> %d: %.1f per connection\n", g0, g1, float64(g1-g0)/float64(*conns))
	for _, c := range open {
		_ = c.CloseNow()
	}
}

// subscribe opens a connection with one subscription and waits for its
// first value.
func subscribe(ctx context.Context, base string, author int) *websocket.Conn {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	check(err)
	c.SetReadLimit(1 << 20)
	send := func(v any) {
		b, _ := json.Marshal(v)
		check(c.Write(ctx, websocket.MessageText, b))
	}
	send(map[string]any{"type": "connection_init"})
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": fmt.Sprintf(`subscription { titleList(authorId: %d) { id title } }`, author)}})
	for {
		_, b, err := c.Read(ctx)
		check(err)
		var m struct{ Type string }
		check(json.Unmarshal(b, &m))
		if m.Type == "next" {
			// Keep reading (pings, later versions) as a client does.
			go func() {
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			}()
			return c
		}
	}
}

func waitReady(base string) {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	check(fmt.Errorf("%s not ready in 2 minutes", base))
}

// rssAnon is the process's anonymous resident memory (heap and stacks).
func rssAnon(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			check(err)
			return kb << 10
		}
	}
	check(fmt.Errorf("no RssAnon for %d", pid))
	return 0
}

func goroutines(base string) int {
	resp, err := http.Get(base + "/metrics")
	check(err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.Atoi(v)
			check(err)
			return n
		}
	}
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsmem:", err)
		os.Exit(1)
	}
}
