package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
)

// BenchmarkHitAuth compares, in one run, the GraphQL hit with auth off and
// with auth on, each request carrying a bearer token (HS256, then RS256):
// author a's query comes with author a's token, so 300 callers each have
// their own response-cache entries. After the first request of each token,
// its verification is remembered: a hit pays a header lookup and a cache
// lookup by the token's bytes, not a signature check.
//
// Compare the medians of the rounds: bench/run.sh prints the ratios.
func BenchmarkHitAuth(b *testing.B) {
	secret := []byte("bench-secret-of-at-least-32-bytes!")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&key.PublicKey}, Leeway: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	tokens := func(m jwt.SigningMethod, k any) []string {
		out := make([]string, demo.NumAuthors)
		for i := range out {
			s, err := jwt.NewWithClaims(m, jwt.MapClaims{
				"sub": fmt.Sprint(i + 1), "scope": "stats:read", "exp": time.Now().Add(time.Hour).Unix(),
			}).SignedString(k)
			if err != nil {
				b.Fatal(err)
			}
			out[i] = s
		}
		return out
	}
	// One gateway per kind, each serving 300 callers.
	off := newRig(b)
	on := newRig(b, func(o *gateway.Options) { o.Auth = v })
	onRS := newRig(b, func(o *gateway.Options) { o.Auth = v })
	// Every request carries its author's token, auth on or off (an app sends
	// it either way): the difference is what the gateway does with it.
	run := func(b *testing.B, r *rig, toks []string) {
		hdrs := make([][]string, len(toks))
		for j, tok := range toks {
			hdrs[j] = []string{"Bearer " + tok}
		}
		// Warm each token's verification and response-cache entry.
		for j := range r.bodies {
			req := post(r.bodies[j])
			req.Header["Authorization"] = hdrs[j]
			w := &discard{h: http.Header{}}
			r.h.ServeHTTP(w, req)
			if w.n != len(r.want[j]) {
				b.Fatalf("author %d: wrote %d bytes, want %d", j+1, w.n, len(r.want[j]))
			}
		}
		calls, primes := r.store.calls.Load(), r.primes.Load()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % len(r.bodies)
			req := post(r.bodies[j])
			req.Header["Authorization"] = hdrs[j]
			w := &discard{h: http.Header{}}
			r.h.ServeHTTP(w, req)
			if w.n != len(r.want[j]) {
				b.Fatalf("author %d: wrote %d bytes, want %d", j+1, w.n, len(r.want[j]))
			}
		}
		b.StopTimer()
		if d := r.store.calls.Load() - calls; d != 0 {
			b.Fatalf("hits made %d store calls", d)
		}
		if d := r.primes.Load() - primes; d != 0 {
			b.Fatalf("hits ran %d primers", d)
		}
	}
	hs, rs := tokens(jwt.SigningMethodHS256, secret), tokens(jwt.SigningMethodRS256, key)
	// Three rounds, interleaved, so that a change in the machine's load
	// (shared with other work) falls on all three; compare medians.
	for range 3 {
		b.Run("off", func(b *testing.B) { run(b, off, hs) })
		b.Run("hs256", func(b *testing.B) { run(b, on, hs) })
		b.Run("rs256", func(b *testing.B) { run(b, onRS, rs) })
	}
	// And request by request: each iteration serves one request of each
	// kind and times it, so that load from outside falls on all three alike;
	// the ratios are reported as metrics (x auth-off throughput).
	b.Run("interleaved", func(b *testing.B) {
		type mode struct {
			r    *rig
			toks []string
			ns   time.Duration
		}
		modes := []*mode{{r: off, toks: hs}, {r: on, toks: hs}, {r: onRS, toks: rs}}
		for _, m := range modes[1:] { // warm each token's entries
			for j := range m.r.bodies {
				req := post(m.r.bodies[j])
				req.Header["Authorization"] = []string{"Bearer " + m.toks[j]}
				m.r.h.ServeHTTP(&discard{h: http.Header{}}, req)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % len(off.bodies)
			// The kinds take turns at going first: the first request of an
			// iteration runs on caches the previous kind left behind.
			for k := range modes {
				m := modes[(i+k)%len(modes)]
				req := post(m.r.bodies[j])
				// A fresh header value, as a server parses one from each
				// request (untimed, like the rest of building the request).
				req.Header["Authorization"] = []string{"Bearer " + m.toks[j]}
				w := &discard{h: http.Header{}}
				t0 := time.Now()
				m.r.h.ServeHTTP(w, req)
				m.ns += time.Since(t0)
				if w.n != len(m.r.want[j]) {
					b.Fatalf("author %d: wrote %d bytes, want %d", j+1, w.n, len(m.r.want[j]))
				}
			}
		}
		b.StopTimer()
		n := float64(b.N)
		b.ReportMetric(float64(modes[0].ns)/n, "off-ns/req")
		b.ReportMetric(float64(modes[1].ns)/n, "hs256-ns/req")
		b.ReportMetric(float64(modes[2].ns)/n, "rs256-ns/req")
		b.ReportMetric(float64(modes[0].ns)/float64(modes[1].ns), "hs256-x")
		b.ReportMetric(float64(modes[0].ns)/float64(modes[2].ns), "rs256-x")
	})
}

// BenchmarkAuthenticate is what auth adds to a request: reading the bearer
// token and finding it among the remembered verified tokens, against a full
// verification (signature and claims) with the cache off, for HS256 and
// RS256.
func BenchmarkAuthenticate(b *testing.B) {
	secret := []byte("bench-secret-of-at-least-32-bytes!")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "5", "scope": "stats:read titles:write", "exp": time.Now().Add(time.Hour).Unix()}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	rs, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	for _, cached := range []bool{true, false} {
		cfg := auth.Config{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&key.PublicKey}}
		name := "remembered"
		if !cached {
			cfg.CacheBytes, name = -1, "verified"
		}
		v, err := auth.NewVerifier(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for alg, tok := range map[string]string{"hs256": hs, "rs256": rs} {
			b.Run(name+"/"+alg, func(b *testing.B) {
				req := post(nil)
				req.Header["Authorization"] = []string{"Bearer " + tok}
				b.ReportAllocs()
				for b.Loop() {
					if p, err := v.Authenticate(req); err != nil || p == nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
