package ratelimit

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	"github.com/kck-go/kck/auth"
)

// Client is the client of a request: by its token's claim when it has one,
// else by addr.
func (l *Limiter) Client(p *auth.Principal, addr netip.Addr) Key {
	if p != nil {
		if id, ok := p.Claim(l.cfg.Claim); ok && id != "" {
			return Key{ID: id}
		}
	}
	return Key{Addr: addr}
}

// Address is the address a request comes from: the peer's, or, when the
// peer is a trusted proxy, the first address of X-Forwarded-For that is
// not itself trusted, reading from the right (the hops the proxies
// appended; what the client wrote itself is leftmost and never believed
// past an untrusted hop). IPv6 addresses are masked to their /64. A zero
// Addr when nothing parses.
func (l *Limiter) Address(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(r.RemoteAddr); err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if len(l.cfg.TrustedProxies) > 0 && l.trusted(a) {
		a = l.forwarded(r.Header["X-Forwarded-For"], a)
	}
	return mask(a)
}

// maxHops bounds the X-Forwarded-For entries read.
const maxHops = 32

func (l *Limiter) forwarded(lines []string, peer netip.Addr) netip.Addr {
	hops := 0
	for i := len(lines) - 1; i >= 0; i-- {
		s := lines[i]
		for s != "" {
			if hops++; hops > maxHops {
				return peer
			}
			var hop string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				hop, s = s[j+1:], s[:j]
			} else {
				hop, s = s, ""
			}
			a, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				return peer // a hop we cannot read: the last one we could
			}
			if !l.trusted(a) {
				return a
			}
			peer = a
		}
	}
	return peer // every hop trusted: the leftmost
}

func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (l *Limiter) trusted(a netip.Addr) bool {
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func mask(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// A request's client travels in its context to where subscriptions and
// misses are counted (package graph, the cache's miss budget).

type ctxKey struct{}

type ctxClient struct {
	l    *Limiter
	addr netip.Addr
}

// WithClient returns ctx carrying l and the request's address; the client
// is decided when a budget is spent, by the principal in the context then
// (a WebSocket's token arrives after the upgrade, in connection_init).
func WithClient(ctx context.Context, l *Limiter, addr netip.Addr) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, ctxClient{l: l, addr: addr})
}

// AllowFrom spends one token of k's budget for the client in ctx; nil when
// ctx carries no limiter.
func AllowFrom(ctx context.Context, k Kind) error {
	c, ok := ctx.Value(ctxKey{}).(ctxClient)
	if !ok || !c.l.On(k) {
		return nil
	}
	return c.l.Allow(c.l.Client(auth.PrincipalFrom(ctx), c.addr), k)
}

// Gate is one client's budget of k, spent and refunded by the caller (the
// cache's miss budget takes one).
type Gate struct {
	l *Limiter
	c Key
	k Kind
}

// GateFrom returns the gate of the client in ctx for k; nil when ctx
// carries no limiter or k is off.
func GateFrom(ctx context.Context, p *auth.Principal, k Kind) *Gate {
	c, ok := ctx.Value(ctxKey{}).(ctxClient)
	if !ok || !c.l.On(k) {
		return nil
	}
	return &Gate{l: c.l, c: c.l.Client(p, c.addr), k: k}
}

// Gate returns client c's gate of k; nil when k is off.
func (l *Limiter) Gate(c Key, k Kind) *Gate {
	if !l.On(k) {
		return nil
	}
	return &Gate{l: l, c: c, k: k}
}

// Take spends one token.
func (g *Gate) Take() error { return g.l.Allow(g.c, g.k) }

// Refund gives one back.
func (g *Gate) Refund() { g.l.Refund(g.c, g.k) }
