package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sys/unix"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
)

// BenchmarkHitAuth compares, in one run, the GraphQL hit with auth off and
// with auth on, each request carrying a bearer token (HS256, then RS256):
// author a's query comes with author a's token, 300 callers. After the first
// request of each token, its verification is remembered: a hit pays a header
// lookup and a lookup by the token's bytes, not a signature check. titleList
// is public, so its response-cache entry is one for every caller.
//
// Compare the medians of the rounds (bench/run.sh prints the ratios), or the
// interleaved form's ratios, which load from outside moves less.
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
	// Only serving is timed: requests are built in batches with the timer
	// stopped (building one costs more than a hit), each with a fresh header
	// value, as a server parses one from each request.
	run := func(b *testing.B, r *rig, toks []string) {
		const batch = 1024
		reqs := make([]*http.Request, batch)
		ws := make([]*discard, batch)
		build := func(i0 int) {
			for k := range reqs {
				j := (i0 + k) % len(r.bodies)
				reqs[k] = post(r.bodies[j])
				reqs[k].Header["Authorization"] = []string{"Bearer " + toks[j]}
				ws[k] = &discard{h: http.Header{}}
			}
		}
		check := func(k, i int) {
			if j := i % len(r.bodies); ws[k].n != len(r.want[j]) {
				b.Fatalf("author %d: wrote %d bytes, want %d", j+1, ws[k].n, len(r.want[j]))
			}
		}
		// Warm each token's verification and response-cache entry.
		for i0 := 0; i0 < len(r.bodies); i0 += batch {
			build(i0)
			for k := 0; k < batch && i0+k < len(r.bodies); k++ {
				r.h.ServeHTTP(ws[k], reqs[k])
				check(k, i0+k)
			}
		}
		calls, primes := r.store.calls.Load(), r.primes.Load()
		var cpu time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		for i0 := 0; i0 < b.N; i0 += batch {
			b.StopTimer()
			build(i0)
			b.StartTimer()
			cpu += serveHits(r.h, ws[:min(batch, b.N-i0)], reqs)
			b.StopTimer()
			for k := 0; k < batch && i0+k < b.N; k++ {
				check(k, i0+k)
			}
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
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
	// And interleaved: the kinds take turns, 64 requests at a time, so that
	// load from outside falls on all three alike; each turn is timed on the
	// wall clock and on its thread's CPU clock. The ratios are reported as
	// metrics (x auth-off throughput).
	b.Run("interleaved", func(b *testing.B) {
		interleaveHits(b, 64, true, []*hitMode{{name: "off", r: off, tokens: hs}, {name: "hs256", r: on, tokens: hs}, {name: "rs256", r: onRS, tokens: rs}})
	})
}

// serveHits serves each request of a batch and returns the CPU time its
// thread spent doing so. The goroutine is locked to its thread, so that the
// time is the hits' own: unlike wall time, it leaves out the time other work
// on a shared machine holds the core.
func serveHits(h http.Handler, ws []*discard, reqs []*http.Request) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	for k, w := range ws {
		h.ServeHTTP(w, reqs[k])
	}
	return threadCPU() - t0
}

// threadCPU is the calling thread's CPU time, to the nanosecond (the
// scheduler's own accounting, not sampled at clock ticks).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
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
