package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// compareGateways loads each gateway of list (name=URL pairs) in turn,
// rounds times, after checking that they answer every query with the same
// data, and prints each one's best run and its ratio to the first.
func compareGateways(list string, conns int, d time.Duration, rounds, authors int) {
	type target struct {
		name, url string
		want      map[string]string
	}
	var targets []target
	for pair := range strings.SplitSeq(list, ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" || url == "" {
			fail("-compare: want name=URL pairs, got %q", pair)
		}
		targets = append(targets, target{name: name, url: url, want: map[string]string{}})
	}
	client := newClient(conns)
	bodies := make([][]byte, authors)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, query, i+1)
		var data []string
		for _, t := range targets {
			resp, err := client.Post(t.url+"/graphql", "application/json", bytes.NewReader(bodies[i]))
			check(err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			check(err)
			var answer struct {
				Data   json.RawMessage
				Errors []any
			}
			if resp.StatusCode != 200 || json.Unmarshal(b, &answer) != nil || len(answer.Errors) > 0 {
				fail("warm-up of author %d on %s: %d %s", i+1, t.url, resp.StatusCode, b)
			}
			data = append(data, string(answer.Data))
			t.want[string(bodies[i])] = string(b) // each gateway's versions are its own
		}
		for _, d := range data[1:] {
			if d != data[0] {
				fail("author %d: the gateways' data differ", i+1)
			}
		}
	}
	results := map[string][]result{}
	for r := 0; r < rounds; r++ {
		for _, t := range targets {
			res := load(client, t.url+"/graphql", bodies, nil, t.want, conns, d)
			fmt.Fprintf(os.Stderr, "round %d %-20s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n",
				r+1, t.name, res.rps, ms(res.p50), ms(res.p99), res.errors)
			results[t.name] = append(results[t.name], res)
		}
	}
	best := func(name string) result {
		return slices.MaxFunc(results[name], func(a, b result) int { return int(a.rps - b.rps) })
	}
	base := best(targets[0].name)
	fmt.Printf("| gateway | req/s | p50 | p99 | x %s |\n|---|---|---|---|---|\n", targets[0].name)
	for _, t := range targets {
		b := best(t.name)
		fmt.Printf("| %s | %.0f | %.2f ms | %.2f ms | %.2f |\n", t.name, b.rps, ms(b.p50), ms(b.p99), b.rps/base.rps)
		if b.errors > 0 {
			fail("%s: %d errors during load", t.name, b.errors)
		}
	}
}

// serveOTLP takes OTLP/HTTP trace exports at addr and discards them,
// answering each with an empty ExportTraceServiceResponse (no bytes: an
// empty protobuf message), as a collector that keeps up does.
func serveOTLP(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
	check(http.ListenAndServe(addr, h))
}
