package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// compareAuth loads the auth-off gateway (HS256 tokens, ignored), then the
// auth-on gateway with HS256 tokens, then with RS256 tokens, rounds times,
// and prints each one's best run and its ratio to auth off.
func compareAuth(offURL, onURL, secret, rsaKeyFile string, conns int, d time.Duration, rounds, authors int) {
	if len(secret) < 32 || rsaKeyFile == "" {
		fail("-auth-gateway needs -auth-secret (32 bytes or more) and -auth-rsa-key")
	}
	raw, err := os.ReadFile(rsaKeyFile)
	check(err)
	blk, _ := pem.Decode(raw)
	if blk == nil {
		fail("%s: no PEM block", rsaKeyFile)
	}
	anyKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	check(err)
	key, ok := anyKey.(*rsa.PrivateKey)
	if !ok {
		fail("%s: not an RSA key", rsaKeyFile)
	}
	mint := func(m jwt.SigningMethod, k any) []string {
		out := make([]string, authors)
		for i := range out {
			s, err := jwt.NewWithClaims(m, jwt.MapClaims{"sub": strconv.Itoa(i + 1), "scope": "stats:read",
				"exp": time.Now().Add(time.Hour).Unix()}).SignedString(k)
			check(err)
			out[i] = s
		}
		return out
	}
	hs, rs := mint(jwt.SigningMethodHS256, []byte(secret)), mint(jwt.SigningMethodRS256, key)

	client := newClient(conns)
	bodies := make([][]byte, authors)
	// Each gateway's own answers (their versions differ); the data in them
	// must be the same. Every token warms its entries.
	wantOff, wantOn := map[string]string{}, map[string]string{}
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, query, i+1)
		var data []string
		for _, c := range []struct {
			url, tok string
			want     map[string]string
		}{{offURL, hs[i], wantOff}, {onURL, hs[i], wantOn}, {onURL, rs[i], wantOn}} {
			req, err := http.NewRequest(http.MethodPost, c.url+"/graphql", bytes.NewReader(bodies[i]))
			check(err)
			req.Header["Content-Type"] = jsonType
			req.Header.Set("Authorization", "Bearer "+c.tok)
			resp, err := client.Do(req)
			check(err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			check(err)
			var answer struct {
				Data   json.RawMessage
				Errors []any
			}
			if resp.StatusCode != 200 || json.Unmarshal(b, &answer) != nil || len(answer.Errors) > 0 {
				fail("warm-up of author %d on %s: %d %s", i+1, c.url, resp.StatusCode, b)
			}
			data = append(data, string(answer.Data))
			if prev, ok := c.want[string(bodies[i])]; ok && prev != string(b) {
				fail("author %d: %s answered an HS256 and an RS256 token otherwise", i+1, c.url)
			}
			c.want[string(bodies[i])] = string(b)
		}
		if data[0] != data[1] || data[1] != data[2] {
			fail("author %d: the gateways' data differ: %s", i+1, data)
		}
	}
	targets := []struct {
		name, url string
		tokens    []string
		want      map[string]string
	}{{"auth off", offURL, hs, wantOff}, {"auth on, HS256", onURL, hs, wantOn}, {"auth on, RS256", onURL, rs, wantOn}}
	results := map[string][]result{}
	for r := 0; r < rounds; r++ {
		for _, t := range targets {
			tokens := t.tokens
			bearer := func(j int, h http.Header) { h["Authorization"] = []string{"Bearer " + tokens[j]} }
			res := load(client, t.url+"/graphql", bodies, bearer, t.want, conns, d)
			fmt.Fprintf(os.Stderr, "round %d %-15s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n",
				r+1, t.name, res.rps, ms(res.p50), ms(res.p99), res.errors)
			results[t.name] = append(results[t.name], res)
		}
	}
	best := func(name string) result {
		return slices.MaxFunc(results[name], func(a, b result) int { return int(a.rps - b.rps) })
	}
	base := best("auth off")
	fmt.Printf("| gateway | req/s | p50 | p99 | x auth off |\n|---|---|---|---|---|\n")
	for _, t := range targets {
		b := best(t.name)
		fmt.Printf("| %s | %.0f | %.2f ms | %.2f ms | %.2f |\n", t.name, b.rps, ms(b.p50), ms(b.p99), b.rps/base.rps)
		if b.errors > 0 {
			fail("%s: %d errors during load", t.name, b.errors)
		}
	}
}
