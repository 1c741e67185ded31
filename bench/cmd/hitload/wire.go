package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compareWire compares, in one run, the static server serving identity
// bytes (the ceiling), the gateway's identity hits and its hits in coding
// enc (gzip or zstd), with the bytes each response took on the wire
// (status line, headers and body, as read from the connection). With keys
// 1 the requests are the authors' titleList queries; with more, one query
// reading that many titleLists (authors 1 to keys), which needs a gateway
// whose document limits allow it.
//
// Each compressed response is checked at warm-up to decompress to the
// identity response, then byte for byte during load against the one
// captured: hits serve stored bytes, so no request decompresses.
func compareWire(gw, enc string, keys, conns int, d time.Duration, rounds, authors int) {
	if enc != "gzip" && enc != "zstd" {
		fail("-accept-encoding: gzip or zstd, not %q", enc)
	}
	var bodies [][]byte
	if keys <= 1 {
		for i := range authors {
			bodies = append(bodies, fmt.Appendf(nil, query, i+1))
		}
	} else {
		bodies = [][]byte{manyKeys(keys)}
	}
	var wireBytes atomic.Int64
	client := newCountingClient(conns, &wireBytes)
	plain, coded := map[string]string{}, map[string]string{}
	compressed := 0
	for _, body := range bodies {
		// The two codings of one version: asked again if a refresh came
		// between them.
		for try := 0; ; try++ {
			p, _ := warm(client, gw, body, "")
			c, ce := warm(client, gw, body, enc)
			if ce != enc && ce != "" {
				fail("asked for %s, got Content-Encoding %q (%d bytes)", enc, ce, len(c))
			}
			if string(decode(ce, c)) == string(p) {
				if ce != "" {
					compressed++
				}
				plain[string(body)], coded[string(body)] = string(p), string(c)
				break
			}
			if try == 3 {
				fail("the %s response does not decompress to the identity one", enc)
			}
		}
	}
	// Bodies under the gateway's --compress-min-bytes come back identity.
	fmt.Fprintf(os.Stderr, "%d of %d responses come in %s\n", compressed, len(bodies), enc)
	staticURL, stop := startStatic(newClient(conns), plain)
	defer stop()

	acceptEnc := []string{enc}
	targets := []struct {
		name, url string
		extra     func(int, http.Header)
		want      map[string]string
	}{
		{"static, identity", staticURL, nil, plain},
		{"gateway, identity", gw + "/graphql", nil, plain},
		{"gateway, " + enc, gw + "/graphql", func(_ int, h http.Header) { h["Accept-Encoding"] = acceptEnc }, coded},
	}
	type run struct {
		result
		perResponse float64 // bytes read from the wire per response
	}
	results := map[string][]run{}
	for r := 0; r < rounds; r++ {
		for _, t := range targets {
			before := wireBytes.Load()
			res := load(client, t.url, bodies, t.extra, t.want, conns, d)
			per := float64(wireBytes.Load()-before) / float64(max(res.n, 1))
			fmt.Fprintf(os.Stderr, "round %d %-18s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %8.0f bytes/response  errors %d\n",
				r+1, t.name, res.rps, ms(res.p50), ms(res.p99), per, res.errors)
			results[t.name] = append(results[t.name], run{res, per})
		}
	}
	best := func(name string) run {
		return slices.MaxFunc(results[name], func(a, b run) int { return int(a.rps - b.rps) })
	}
	// The ratio to the static server is taken round by round (each round's
	// targets ran back to back) and its median reported: on a shared
	// machine one round's burst of other work moves a best-of figure.
	median := func(name string) float64 {
		var rs []float64
		for i, r := range results[name] {
			rs = append(rs, r.rps/results[targets[0].name][i].rps)
		}
		slices.Sort(rs)
		if n := len(rs); n%2 == 0 {
			return (rs[n/2-1] + rs[n/2]) / 2
		}
		return rs[len(rs)/2]
	}
	base := best(targets[0].name)
	fmt.Printf("| %d key(s), %s | best req/s | p50 | p99 | bytes on the wire per response | x static req/s (median of %d rounds) | x static bytes |\n|---|---|---|---|---|---|---|\n", max(keys, 1), enc, rounds)
	for _, t := range targets {
		b := best(t.name)
		fmt.Printf("| %s | %.0f | %.2f ms | %.2f ms | %.0f | %.2f | %.2f |\n", t.name, b.rps, ms(b.p50), ms(b.p99), b.perResponse, median(t.name), base.perResponse/b.perResponse)
		if b.errors > 0 {
			fail("%s: %d errors during load", t.name, b.errors)
		}
	}
}

// manyKeys is one query reading n keys: titleList of authors 1 to n, each
// under its own alias.
func manyKeys(n int) []byte {
	var b strings.Builder
	b.WriteString("{ ")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "a%d: titleList(authorId: %d) { id title year } ", i, i)
	}
	b.WriteString("}")
	return fmt.Appendf(nil, `{"query":%q}`, b.String())
}

// warm sends body once with Accept-Encoding enc ("" sends none) and returns
// the response as sent and its Content-Encoding.
func warm(client *http.Client, gw string, body []byte, enc string) ([]byte, string) {
	req, err := http.NewRequest(http.MethodPost, gw+"/graphql", bytes.NewReader(body))
	check(err)
	req.Header["Content-Type"] = jsonType
	if enc != "" {
		req.Header.Set("Accept-Encoding", enc)
	}
	resp, err := client.Do(req)
	check(err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	check(err)
	if resp.StatusCode != 200 {
		fail("warm-up: %d %.300s", resp.StatusCode, b)
	}
	ce := resp.Header.Get("Content-Encoding")
	if bytes.Contains(decode(ce, b), []byte(`"errors"`)) {
		fail("warm-up: errors in %.300s (raise the gateway's --max-aliases, --max-root-fields, --max-fields, --max-complexity for -keys)", decode(ce, b))
	}
	return b, ce
}

func decode(enc string, b []byte) []byte {
	var r io.Reader
	switch enc {
	case "":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		check(err)
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		check(err)
		defer zr.Close()
		r = zr
	default:
		fail("unknown Content-Encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	check(err)
	return out
}

// newCountingClient is newClient whose connections add the bytes they
// read to n.
func newCountingClient(conns int, n *atomic.Int64) *http.Client {
	c := newClient(conns)
	var dialer net.Dialer
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, n: n}, nil
	}
	return c
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}
