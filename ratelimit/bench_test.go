package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kck-go/kck/ratelimit"
)

// BenchmarkAllow is what the limiter adds to a request it lets through: the
// client's address from the request and a token from its bucket (a known
// client, every budget on). Compare with BenchmarkHit in bench/ (the whole
// hit, with and without the limiter).
func BenchmarkAllow(b *testing.B) {
	big := ratelimit.Rate{PerSecond: 1e9, Burst: 1 << 30}
	l, err := ratelimit.New(ratelimit.Config{Requests: big, Misses: big})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Allow(l.Client(nil, l.Address(r)), ratelimit.Requests); err != nil {
			b.Fatal(err)
		}
	}
}
