// Command hitload compares the gateway's GraphQL hit throughput with a plain
// net/http server that writes the same bytes, in one run, over loopback.
//
//	hitload -gateway http://127.0.0.1:18080 [-c 64] [-d 8s] [-rounds 2]
//	hitload -gateway URL -auth-gateway URL -auth-secret S -auth-rsa-key FILE
//	hitload -gateway URL -accept-encoding gzip|zstd [-keys 300]
//	hitload -compare name=URL,name=URL,...
//	hitload otlp ADDR
//
// It first sends one titleList query per demo author to the gateway (which
// warms its cache) and keeps the responses; then it starts itself as the
// static server (a child process, as the gateway is one) holding those
// responses by request body; then it loads each server in turn, rounds
// times, and prints req/s, p50 and p99 per server and the ratio of the
// gateway to the static server.
//
// With -auth-gateway it compares instead, in one run, a gateway with auth
// off against one with auth on (verifying HS256 tokens with -auth-secret and
// RS256 tokens with the public half of -auth-rsa-key): every request carries
// its author's bearer token, minted here (sub = the author id), HS256 for
// the auth-off gateway too (it ignores the header), so both kinds send the
// same bytes but the gateway's work.
//
// With -compare it loads several gateways that serve the same data (one
// with tracing off, others with it on) in turn, rounds times, and prints
// each one's best run and its ratio to the first. `hitload otlp ADDR` is an
// OTLP/HTTP trace sink for them: it takes every export and discards it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const query = `{"query":"query($a: Int!) { titleList(authorId: $a) { id title year } }","variables":{"a":%d}}`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "static" {
		serveStatic(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "otlp" {
		serveOTLP(os.Args[2])
		return
	}
	gw := flag.String("gateway", "http://127.0.0.1:18080", "gateway base URL")
	conns := flag.Int("c", 64, "concurrent connections")
	dur := flag.Duration("d", 8*time.Second, "duration of one load run")
	rounds := flag.Int("rounds", 2, "runs per server, alternating")
	authors := flag.Int("authors", 300, "distinct queries (one per author id)")
	authGW := flag.String("auth-gateway", "", "a gateway with auth on: compare it with -gateway (auth off)")
	acceptEncoding := flag.String("accept-encoding", "", "compare the gateway's compressed hits (this Accept-Encoding, e.g. gzip or zstd) with its identity hits and the static server's identity bytes, with bytes on the wire")
	keys := flag.Int("keys", 1, "with -accept-encoding: keys read by one request: 1 (one titleList query per author) or more (one query of that many aliased titleList fields)")
	compare := flag.String("compare", "", "gateways to compare, name=URL pairs, comma-separated: each one's ratio to the first")
	secret := flag.String("auth-secret", "", "the auth gateway's HS256 secret")
	rsaKey := flag.String("auth-rsa-key", "", "PEM file of the RSA private key whose public half the auth gateway holds")
	flag.Parse()
	if *compare != "" {
		compareGateways(*compare, *conns, *dur, *rounds, *authors)
		return
	}
	if *authGW != "" {
		compareAuth(*gw, *authGW, *secret, *rsaKey, *conns, *dur, *rounds, *authors)
		return
	}
	if *acceptEncoding != "" {
		compareWire(*gw, *acceptEncoding, *keys, *conns, *dur, *rounds, *authors)
		return
	}

	client := newClient(*conns)
	bodies := make([][]byte, *authors)
	resps := map[string]string{}
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, query, i+1)
		resp, err := client.Post(*gw+"/graphql", "application/json", bytes.NewReader(bodies[i]))
		check(err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(err)
		if resp.StatusCode != 200 || bytes.Contains(b, []byte(`"errors"`)) {
			fail("warm-up of author %d: %d %s", i+1, resp.StatusCode, b)
		}
		resps[string(bodies[i])] = string(b)
	}
	staticURL, stop := startStatic(client, resps)
	defer stop()

	targets := []struct{ name, url string }{{"static", staticURL}, {"gateway", *gw + "/graphql"}}
	results := map[string][]result{}
	for r := 0; r < *rounds; r++ {
		for _, t := range targets {
			res := load(client, t.url, bodies, nil, resps, *conns, *dur)
			fmt.Fprintf(os.Stderr, "round %d %-8s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n",
				r+1, t.name, res.rps, ms(res.p50), ms(res.p99), res.errors)
			results[t.name] = append(results[t.name], res)
		}
	}
	best := func(name string) result {
		return slices.MaxFunc(results[name], func(a, b result) int { return int(a.rps - b.rps) })
	}
	s, g := best("static"), best("gateway")
	fmt.Printf("| server | req/s | p50 | p99 | x static |\n|---|---|---|---|---|\n")
	fmt.Printf("| plain net/http, same bytes | %.0f | %.2f ms | %.2f ms | 1.00 |\n", s.rps, ms(s.p50), ms(s.p99))
	fmt.Printf("| KCK gateway, GraphQL hit | %.0f | %.2f ms | %.2f ms | %.2f |\n", g.rps, ms(g.p50), ms(g.p99), g.rps/s.rps)
	if g.errors > 0 || s.errors > 0 {
		fail("errors during load: gateway %d, static %d", g.errors, s.errors)
	}
}

// startStatic starts this program as the static server (a child process,
// as the gateway is one) holding resps by request body, and returns its
// /graphql URL and a function that stops it.
func startStatic(client *http.Client, resps map[string]string) (string, func()) {
	f, err := os.CreateTemp("", "hitload-*.json")
	check(err)
	check(json.NewEncoder(f).Encode(resps))
	f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	staticAddr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	check(err)
	cmd := exec.Command(self, "static", staticAddr, f.Name())
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); os.Remove(f.Name()) }
	waitUp(client, "http://"+staticAddr+"/")
	return "http://" + staticAddr + "/graphql", stop
}

type result struct {
	n        int64 // responses
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

// load runs conns workers for d, each sending the queries in turn, and
// checks every response against the expected bytes.
// With extra, query j's headers are set by extra(j, header) too.
func load(client *http.Client, url string, bodies [][]byte, extra func(int, http.Header), want map[string]string, conns int, d time.Duration) result {
	var (
		wg     sync.WaitGroup
		n      atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		lats   []time.Duration
		stop   = make(chan struct{})
		buffer = make([][]byte, conns)
	)
	start := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<16)
			buf := buffer[w]
			for i := w; ; i++ {
				select {
				case <-stop:
					mu.Lock()
					lats = append(lats, mine...)
					mu.Unlock()
					return
				default:
				}
				j := i % len(bodies)
				body := bodies[j]
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				check(err)
				req.Header["Content-Type"] = jsonType
				if extra != nil {
					extra(j, req.Header)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				buf, err = readAll(resp.Body, buf[:0])
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
				if err != nil || resp.StatusCode != 200 || string(buf) != want[string(body)] {
					errs.Add(1)
				}
				n.Add(1)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(p*float64(len(lats)-1))]
	}
	return result{n: n.Load(), rps: float64(n.Load()) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), errors: errs.Load()}
}

var jsonType = []string{"application/json"}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// serveStatic is the ceiling: read the body, look up its response, write it.
func serveStatic(addr, file string) {
	raw, err := os.ReadFile(file)
	check(err)
	var resps map[string]string
	check(json.Unmarshal(raw, &resps))
	byBody := make(map[string][]byte, len(resps))
	for k, v := range resps {
		byBody[k] = []byte(v)
	}
	ct := []string{"application/json"}
	// Bodies up to 512 bytes (one author's query) are read on the stack;
	// longer ones (-keys) into pooled buffers, as the gateway reads them.
	long := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [512]byte
		n, err := io.ReadFull(r.Body, buf[:])
		resp := byBody[string(buf[:n])]
		if err == nil {
			lb := long.Get().(*bytes.Buffer)
			lb.Reset()
			lb.Write(buf[:n])
			_, _ = lb.ReadFrom(r.Body)
			resp = byBody[string(lb.Bytes())]
			long.Put(lb)
		}
		w.Header()["Content-Type"] = ct
		_, _ = w.Write(resp)
	})
	check(http.ListenAndServe(addr, h))
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DisableCompression: true,
	}, Timeout: 30 * time.Second}
}

func waitUp(client *http.Client, url string) {
	for i := 0; i < 100; i++ {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fail("static server did not start at %s", url)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hitload: "+strings.TrimSuffix(format, "\n")+"\n", args...)
	os.Exit(1)
}
