// Command peers compares KCK's GraphQL hit with what users would run instead,
// in one run on one machine, against the same Postgres data (the demo's
// tables) and the same query, titleList(authorId: $a) { id title year }:
//
//   - static: a Go handler writing KCK's response bytes (the ceiling);
//   - yoga: GraphQL Yoga with its response cache (@envelop/response-cache);
//   - apollo: Apollo Server with its response-cache plugin;
//   - postgraphile: PostGraphile v4, no cache;
//   - gqlgen: plain gqlgen resolvers over pgx, no cache;
//   - kck-embedded, kck-postgres, kck-cassandra: the kck binary on each
//     store (PostgreSQL: the store in the demo database's kck schema).
//
// It loads the demo into its own database, starts every server (and stops
// them), checks that each answers the same data for every author, then
// measures with 1 key and with 300 keys: closed-loop maximum throughput with
// wrk (64 connections), and open-loop latency with vegeta at 25%, 50% and
// 75% of the ceiling's maximum (p50, p99, p99.9). Then the miss path: the
// first read of the SQL product title_list against its primer's raw SQL
// through pgx, on each store. It prints Markdown tables and, with -readme,
// writes them into that file between the peers markers. With -miss-only it
// measures the miss path alone (make bench does, for every store).
//
//	peers -kck ./kck -gqlpeer ./gqlpeer -node-dir bench/peers -postgres-url URL [-d 5s] [-readme bench/README.md]
//	peers -miss-only -postgres-url URL [-only kck-embedded,kck-postgres,kck-cassandra]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kck-go/kck/bench/internal/benchdoc"
)

const query = `{"query":"query($a: Int!) { titleList(authorId: $a) { id title year } }","variables":{"a":%d}}`

// authors is the demo's author count: the 300-key load rotates over all of them.
const authors = 300

type config struct {
	kck, gqlpeer, nodeDir string
	pgURL, database       string
	cassHosts, keyspace   string
	busURL                string
	only                  map[string]bool
	dur, openDur          time.Duration
	conns, wrkThreads     int
	keys                  []int
	missN                 int
	readme                string
	smoke, missOnly       bool
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "static" {
		serveStatic(os.Args[2], os.Args[3])
		return
	}
	var c config
	var only, keys string
	flag.StringVar(&c.kck, "kck", "", "the kck binary")
	flag.StringVar(&c.gqlpeer, "gqlpeer", "", "the gqlpeer binary (bench/cmd/gqlpeer)")
	flag.StringVar(&c.nodeDir, "node-dir", "bench/peers", "folder of the Node peers, after npm ci")
	flag.StringVar(&c.pgURL, "postgres-url", os.Getenv("KCK_POSTGRES_URL"), "a PostgreSQL URL whose user may create databases")
	flag.StringVar(&c.database, "database", "kck_peers", "the database the demo is loaded into (created when absent, its demo tables replaced)")
	flag.StringVar(&c.cassHosts, "cassandra-hosts", os.Getenv("KCK_CASSANDRA_HOSTS"), "Cassandra contact points; empty: no Cassandra rows")
	flag.StringVar(&c.busURL, "bus-url", os.Getenv("KCK_BUS_URL"), "the change bus (NATS) of the Cassandra gateway")
	flag.StringVar(&c.keyspace, "cassandra-keyspace", "kck_peers", "keyspace of the Cassandra gateway and miss path (created when absent)")
	flag.StringVar(&only, "only", "", "comma-separated servers to run (default all): static,yoga,apollo,postgraphile,gqlgen,kck-embedded,kck-postgres,kck-cassandra")
	flag.DurationVar(&c.dur, "d", 5*time.Second, "duration of each closed-loop point")
	flag.DurationVar(&c.openDur, "open-d", 0, "duration of each open-loop point (default -d)")
	flag.IntVar(&c.conns, "c", 64, "closed-loop connections")
	flag.IntVar(&c.wrkThreads, "wrk-threads", 2, "wrk threads")
	flag.StringVar(&keys, "keys", "1,300", "key counts the load rotates over")
	flag.IntVar(&c.missN, "miss", 300, "first reads measured per store on the miss path (0: skip)")
	flag.StringVar(&c.readme, "readme", "", "write the tables into this file between the peers markers")
	flag.BoolVar(&c.smoke, "smoke", false, "a smoke run: fail on any error or mismatch, targets are not judged")
	flag.BoolVar(&c.missOnly, "miss-only", false, "measure the miss path only (no server, no load; -kck not needed)")
	flag.Parse()
	if c.openDur == 0 {
		c.openDur = c.dur
	}
	for _, k := range strings.Split(keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(k))
		if err != nil || n < 1 || n > authors {
			fail("-keys: %q is not a key count from 1 to %d", k, authors)
		}
		c.keys = append(c.keys, n)
	}
	if only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			c.only[strings.TrimSpace(s)] = true
		}
	}
	if c.kck == "" && !c.missOnly || c.pgURL == "" {
		fail("-kck and -postgres-url are needed")
	}
	rep, err := run(c)
	if err != nil {
		fail("%v", err)
	}
	md := rep.markdown(c)
	fmt.Print(md)
	if c.readme != "" {
		if err := benchdoc.Splice(c.readme, beginMarker, endMarker, md); err != nil {
			fail("%v", err)
		}
	}
}

// server is one system under test.
type server struct {
	name, label string
	url         string // POST endpoint
	cmd         *exec.Cmd
}

func (c *config) wants(name string) bool { return c.only == nil || c.only[name] || name == "static" }

func run(c config) (*report, error) {
	ctx := context.Background()
	rep := &report{started: time.Now(), loadBefore: benchdoc.LoadAvg(), keys: c.keys}
	dbURL, err := prepareDatabase(ctx, c.pgURL, c.database)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kck-peers-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	if c.missOnly {
		rep.miss, err = missPath(ctx, dbURL, c.cassHosts, c.keyspace, max(c.missN, 1), c.wants)
		if err != nil {
			return nil, fmt.Errorf("miss path: %w", err)
		}
		rep.loadAfter = benchdoc.LoadAvg()
		rep.took = time.Since(rep.started)
		return rep, nil
	}
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	start := func(s *server, ready string) error {
		servers = append(servers, s)
		s.cmd.Stdout = os.Stderr
		s.cmd.Stderr = os.Stderr
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		return waitReady(s, ready)
	}
	kckServer := func(name, label string, args ...string) (*server, error) {
		port := freePort()
		s := &server{name: name, label: label, url: "http://" + port + "/graphql"}
		s.cmd = exec.Command(c.kck, append([]string{"serve", "--addr", port, "--postgres-url", dbURL, "--log-level", "warn",
			"--data-dir", filepath.Join(work, name)}, args...)...)
		s.cmd.Env = cleanEnv()
		return s, start(s, "http://"+port+"/readyz")
	}
	// The reference: KCK on the embedded store. Its responses are the
	// ceiling's bytes and every peer's data is checked against them.
	ref, err := kckServer("kck-embedded", "KCK, embedded store (GraphQL hit)")
	if err != nil {
		return nil, err
	}
	want := make([][]byte, authors+1)
	for a := 1; a <= authors; a++ {
		b, err := post(ref.url, body(a))
		if err != nil {
			return nil, fmt.Errorf("kck-embedded, author %d: %w", a, err)
		}
		want[a] = b
	}
	static, err := startStatic(work, want)
	if err != nil {
		return nil, err
	}
	servers = append(servers, static)
	if err := waitReady(static, ""); err != nil {
		return nil, err
	}
	list := []*server{static}
	if c.wants("kck-embedded") {
		list = append(list, ref)
	}
	if c.wants("kck-postgres") {
		s, err := kckServer("kck-postgres", "KCK, PostgreSQL store (GraphQL hit)", "--store", "postgres", "--migrate")
		if err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	if c.wants("kck-cassandra") && c.cassHosts != "" {
		if err := migrate(ctx, c.cassHosts, c.keyspace); err != nil {
			return nil, err
		}
		s, err := kckServer("kck-cassandra", "KCK, Cassandra store (GraphQL hit)", "--store", "cassandra", "--cassandra-hosts", c.cassHosts,
			"--cassandra-keyspace", c.keyspace, "--bus-url", c.busURL)
		if err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	node := func(name, label, script string) error {
		if !c.wants(name) {
			return nil
		}
		port := freePort()
		_, p, _ := net.SplitHostPort(port)
		s := &server{name: name, label: label, url: "http://" + port + "/graphql"}
		s.cmd = exec.Command("node", script)
		s.cmd.Dir = c.nodeDir
		s.cmd.Env = append(cleanEnv(), "PEER_POSTGRES_URL="+dbURL, "PEER_PORT="+p, "NODE_ENV=production")
		if err := start(s, ""); err != nil {
			return err
		}
		list = append(list, s)
		return nil
	}
	if err := node("yoga", "GraphQL Yoga + response cache", "yoga.mjs"); err != nil {
		return nil, err
	}
	if err := node("apollo", "Apollo Server + response cache", "apollo.mjs"); err != nil {
		return nil, err
	}
	if err := node("postgraphile", "PostGraphile v4 (no cache)", "postgraphile/server.cjs"); err != nil {
		return nil, err
	}
	if c.wants("gqlgen") && c.gqlpeer != "" {
		port := freePort()
		s := &server{name: "gqlgen", label: "gqlgen over pgx (no cache)", url: "http://" + port + "/graphql"}
		s.cmd = exec.Command(c.gqlpeer, "-addr", port, "-postgres-url", dbURL)
		if err := start(s, ""); err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	// Same data from everyone, for every author, before any timing (this
	// also fills the caches of those that have one).
	for _, s := range list {
		if err := checkSame(s, want); err != nil {
			return nil, err
		}
	}
	rep.servers = list
	script := filepath.Join(work, "rotate.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}
	rep.closed = map[string]map[int]closedResult{}
	rep.open = map[string]map[int][]openResult{}
	for _, k := range c.keys {
		for _, s := range list {
			r, err := wrk(script, s.url, k, c)
			if err != nil {
				return nil, fmt.Errorf("%s, %d keys: %w", s.name, k, err)
			}
			if rep.closed[s.name] == nil {
				rep.closed[s.name] = map[int]closedResult{}
			}
			rep.closed[s.name][k] = r
			fmt.Fprintf(os.Stderr, "closed %-14s %3d keys: %8.0f req/s  (errors %d)\n", s.name, k, r.rps, r.errors)
			if c.smoke && r.errors > 0 {
				return nil, fmt.Errorf("%s, %d keys: %d errors under load", s.name, k, r.errors)
			}
		}
		ceiling := rep.closed["static"][k].rps
		for _, s := range list {
			for _, frac := range fractions {
				rate := frac * ceiling
				var o openResult
				if max := rep.closed[s.name][k].rps; rate > max {
					o = openResult{fraction: frac, rate: rate, over: true}
				} else {
					o, err = attack(s.url, k, rate, c.openDur)
					if err != nil {
						return nil, fmt.Errorf("%s, %d keys, %.0f req/s: %w", s.name, k, rate, err)
					}
					o.fraction = frac
				}
				if rep.open[s.name] == nil {
					rep.open[s.name] = map[int][]openResult{}
				}
				rep.open[s.name][k] = append(rep.open[s.name][k], o)
				fmt.Fprintf(os.Stderr, "open   %-14s %3d keys %6.0f req/s: %s\n", s.name, k, rate, o.cell())
				if c.smoke && !o.over && o.errors > 0 {
					return nil, fmt.Errorf("%s, %d keys, %.0f req/s: %d errors", s.name, k, rate, o.errors)
				}
			}
		}
	}
	for _, s := range servers {
		s.stop()
	}
	servers = nil
	if c.missN > 0 {
		m, err := missPath(ctx, dbURL, c.cassHosts, c.keyspace, c.missN, c.wants)
		if err != nil {
			return nil, fmt.Errorf("miss path: %w", err)
		}
		rep.miss = m
	}
	rep.loadAfter = benchdoc.LoadAvg()
	rep.took = time.Since(rep.started)
	return rep, nil
}

var fractions = []float64{0.25, 0.50, 0.75}

func body(author int) []byte { return fmt.Appendf(nil, query, author) }

// keyAuthor is the author of the i-th request of a load over k keys: with one
// key, author 1; with more, authors 1 to k in turn (the wrk script does the same).
func keyAuthor(i, k int) int { return i%k + 1 }

func post(url string, b []byte) ([]byte, error) {
	resp, err := httpClient.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"errors"`)) {
		return nil, fmt.Errorf("status %d: %.300s", resp.StatusCode, out)
	}
	return out, nil
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}}

// checkSame asks s for every author's titles and compares the data with
// KCK's (as JSON values: key order and extensions aside).
func checkSame(s *server, want [][]byte) error {
	for a := 1; a <= authors; a++ {
		got, err := post(s.url, body(a))
		if err != nil {
			return fmt.Errorf("%s, author %d: %w", s.name, a, err)
		}
		var g, w struct{ Data any }
		if err := json.Unmarshal(got, &g); err != nil {
			return fmt.Errorf("%s, author %d: %w: %.200s", s.name, a, err, got)
		}
		if err := json.Unmarshal(want[a], &w); err != nil {
			return err
		}
		if w.Data == nil || !reflect.DeepEqual(g.Data, w.Data) {
			return fmt.Errorf("%s, author %d: not the same data as KCK's:\n got %.300s\nwant %.300s", s.name, a, got, want[a])
		}
	}
	return nil
}

func startStatic(work string, want [][]byte) (*server, error) {
	byBody := map[string]string{}
	for a := 1; a <= authors; a++ {
		byBody[string(body(a))] = string(want[a])
	}
	f := filepath.Join(work, "static.json")
	raw, _ := json.Marshal(byBody)
	if err := os.WriteFile(f, raw, 0o644); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port := freePort()
	s := &server{name: "static", label: "static bytes, Go net/http (the ceiling)", url: "http://" + port + "/graphql"}
	s.cmd = exec.Command(self, "static", port, f)
	s.cmd.Stderr = os.Stderr
	return s, s.cmd.Start()
}

// serveStatic is the ceiling: read the body, look up its response, write it.
func serveStatic(addr, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	var resps map[string]string
	if err := json.Unmarshal(raw, &resps); err != nil {
		fail("%v", err)
	}
	byBody := make(map[string][]byte, len(resps))
	for k, v := range resps {
		byBody[k] = []byte(v)
	}
	ct := []string{"application/json"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [512]byte
		n, _ := io.ReadFull(r.Body, buf[:])
		b, ok := byBody[string(buf[:n])]
		if !ok {
			http.Error(w, "unknown request", http.StatusNotFound)
			return
		}
		w.Header()["Content-Type"] = ct
		_, _ = w.Write(b)
	})
	fail("%v", http.ListenAndServe(addr, h))
}

// waitReady waits for ready (a GET answering 200) or, when empty, for the
// server to answer a query; at most five minutes, or until it exits.
func waitReady(s *server, ready string) error {
	exited := make(chan struct{})
	// Only to notice an early exit; stop kills the process.
	go func() { _, _ = s.cmd.Process.Wait(); close(exited) }()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready", s.name)
		default:
		}
		if ready != "" {
			if resp, err := httpClient.Get(ready); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		} else if _, err := post(s.url, body(1)); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s was not ready within 5 minutes (boot warming on a busy Cassandra can take that)", s.name)
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		s.cmd = nil
	}
}

// cleanEnv is the environment without KCK_ variables: every setting of a
// server under test is on its command line.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KCK_") {
			env = append(env, e)
		}
	}
	return env
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("%v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peers: "+strings.TrimSuffix(format, "\n")+"\n", args...)
	os.Exit(1)
}
