package ratelimit_test

import (
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/ratelimit"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newLimiter(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	cfg.Now = c.Now
	l, err := ratelimit.New(cfg)
	require.NoError(t, err)
	require.NotNil(t, l)
	return l, c
}

func addr(s string) ratelimit.Key { return ratelimit.Key{Addr: netip.MustParseAddr(s)} }

func TestTokenBucket(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, ratelimit.Config{Requests: ratelimit.Rate{PerSecond: 2, Burst: 3}})
	a, b := addr("192.0.2.1"), ratelimit.Key{ID: "alice"}
	for range 3 {
		require.NoError(t, l.Allow(a, ratelimit.Requests))
	}
	err := l.Allow(a, ratelimit.Requests)
	require.ErrorIs(t, err, ratelimit.ErrRateLimited)
	var re *ratelimit.Error
	require.True(t, errors.As(err, &re))
	assert.Equal(t, ratelimit.Requests, re.Kind)
	assert.Equal(t, 500*time.Millisecond, re.RetryAfter, "one token at 2 a second")
	assert.Equal(t, 1, re.RetryAfterSeconds())
	assert.Contains(t, err.Error(), "2 requests a second")

	// Another client's bucket is its own; a budget that is off is free.
	for range 3 {
		require.NoError(t, l.Allow(b, ratelimit.Requests))
	}
	for range 100 {
		require.NoError(t, l.Allow(a, ratelimit.Misses))
	}
	assert.False(t, l.On(ratelimit.Misses))

	// Tokens come back at the rate, up to the burst.
	c.Advance(499 * time.Millisecond)
	require.Error(t, l.Allow(a, ratelimit.Requests))
	c.Advance(time.Millisecond)
	require.NoError(t, l.Allow(a, ratelimit.Requests))
	require.Error(t, l.Allow(a, ratelimit.Requests))
	c.Advance(time.Hour)
	for range 3 {
		require.NoError(t, l.Allow(a, ratelimit.Requests))
	}
	require.Error(t, l.Allow(a, ratelimit.Requests))
	// A refund gives one back.
	l.Refund(a, ratelimit.Requests)
	require.NoError(t, l.Allow(a, ratelimit.Requests))
}

func TestConfig(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.New(ratelimit.Config{})
	require.NoError(t, err)
	assert.Nil(t, l, "every budget off: no limiter")
	assert.False(t, l.On(ratelimit.Requests), "a nil limiter limits nothing")
	for _, bad := range []ratelimit.Config{
		{Requests: ratelimit.Rate{PerSecond: 1, Burst: 0}},
		{Misses: ratelimit.Rate{PerSecond: -1, Burst: 1}},
		{Requests: ratelimit.Rate{PerSecond: 1, Burst: 1}, MaxBytes: 1000},
	} {
		_, err := ratelimit.New(bad)
		assert.Error(t, err, "%+v", bad)
	}
}

// A million distinct clients do not grow the limiter past its bytes, and
// a client it knows costs no allocation.
func TestMemoryBound(t *testing.T) {
	// Not parallel: AllocsPerRun.
	const maxBytes = 1 << 20
	l, c := newLimiter(t, ratelimit.Config{Requests: ratelimit.Rate{PerSecond: 1, Burst: 5}, MaxBytes: maxBytes})
	heavy := addr("198.51.100.7")
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	heavyAllowed := 0
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		_ = l.Allow(ratelimit.Key{Addr: a}, ratelimit.Requests)
		if i%1000 == 0 {
			if l.Allow(heavy, ratelimit.Requests) == nil { // seen often, limited
				heavyAllowed++
			}
			c.Advance(time.Millisecond)
		}
	}
	assert.LessOrEqual(t, l.Bytes(), uint64(maxBytes))
	assert.Greater(t, l.Clients(), maxBytes/(2*176), "the bytes are used")
	assert.Less(t, l.Clients(), maxBytes/176+1)
	// The client being limited kept its bucket among the newcomers: its
	// burst and no more (one more token refills in the run's 1 s, at its
	// end), never a fresh burst.
	assert.Equal(t, 5, heavyAllowed)

	known := addr("10.0.0.1")
	_ = l.Allow(known, ratelimit.Requests)
	c.Advance(time.Hour)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = l.Allow(known, ratelimit.Requests) }))
}

func TestClientAndAddress(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	l, _ := newLimiter(t, ratelimit.Config{Requests: ratelimit.Rate{PerSecond: 1, Burst: 1}, TrustedProxies: proxies, Claim: "client_id"})
	plain, _ := newLimiter(t, ratelimit.Config{Requests: ratelimit.Rate{PerSecond: 1, Burst: 1}})
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want, plain  string
	}{
		{"a peer", "192.0.2.1:5000", nil, "192.0.2.1", "192.0.2.1"},
		{"a peer's spoofed header", "192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1", "192.0.2.1"},
		{"behind a proxy", "10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9", "10.1.2.3"},
		{"behind two proxies", "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9", "10.1.2.3"},
		{"a client's forged hop is left of its own", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9", "10.1.2.3"},
		{"several header lines", "10.1.2.3:5000", []string{"1.1.1.1", "203.0.113.9, 10.0.0.5"}, "203.0.113.9", "10.1.2.3"},
		{"a hop that is not an address", "10.1.2.3:5000", []string{"unknown"}, "10.1.2.3", "10.1.2.3"},
		{"only proxies", "10.1.2.3:5000", []string{"10.0.0.9"}, "10.0.0.9", "10.1.2.3"},
		{"a hop with a port", "10.1.2.3:5000", []string{"203.0.113.9:443"}, "203.0.113.9", "10.1.2.3"},
		{"IPv6 by its /64", "[2001:db8:1:2:aaaa::1]:5000", nil, "2001:db8:1:2::", "2001:db8:1:2::"},
		{"IPv6 behind an IPv6 proxy", "[2001:db8:ffff::1]:5000", []string{"2001:db8:5:6:7::8"}, "2001:db8:5:6::", "2001:db8:ffff::"},
		{"IPv4 mapped", "[::ffff:192.0.2.1]:5000", nil, "192.0.2.1", "192.0.2.1"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != nil {
			r.Header["X-Forwarded-For"] = tc.xff
		}
		assert.Equal(t, tc.want, l.Address(r).String(), tc.name)
		assert.Equal(t, tc.plain, plain.Address(r).String(), tc.name+" (no trusted proxies)")
	}

	a := netip.MustParseAddr("192.0.2.1")
	withClaim := auth.NewPrincipal(map[string]any{"sub": "5", "client_id": "app-7"}, nil)
	withoutClaim := auth.NewPrincipal(map[string]any{"sub": "5"}, nil)
	assert.Equal(t, ratelimit.Key{ID: "app-7"}, l.Client(withClaim, a))
	assert.Equal(t, ratelimit.Key{Addr: a}, l.Client(withoutClaim, a), "no such claim: by address")
	assert.Equal(t, ratelimit.Key{Addr: a}, l.Client(nil, a))
	assert.Equal(t, ratelimit.Key{ID: "5"}, plain.Client(withoutClaim, a), "sub by default")
}
