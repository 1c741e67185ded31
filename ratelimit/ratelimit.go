// Package ratelimit bounds what each client may ask of the gateway over
// time, where the gateway's other limits bound what one request may cost:
// a token bucket per client for each of four budgets (requests, primer runs
// caused by misses, subscriptions started, WebSocket connections opened).
//
// A client is the token's subject (or another claim named in Config.Claim)
// when the request carries a valid token with it, else its address: the
// peer's, or with trusted proxies the first untrusted hop of
// X-Forwarded-For; IPv6 addresses are taken by their /64 (one host's
// share, as providers give them), so that one host cannot be a million
// clients.
//
// What it promises:
//   - A refusal says when to try again (Error.RetryAfter), and is an error
//     that errors.Is ErrRateLimited.
//   - Memory is bounded in bytes (Config.MaxBytes): a million distinct
//     clients do not grow it. A client that has not asked for a while holds
//     a full bucket, which is the same as no entry, so such entries go
//     first; when none is idle, the one of a sample with the most tokens
//     left does, so a client being limited is the last to go (one that goes
//     gets a fresh burst: the bound costs that much fairness, never
//     memory).
//   - Allow costs a parse-free map lookup and a few float operations under
//     a shard's lock, and allocates nothing for a client it knows.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Kind is one of a client's budgets.
type Kind uint8

// The budgets.
const (
	Requests      Kind = iota // HTTP requests to /graphql, /fetch, /update
	Misses                    // primer runs the client's reads cause
	Subscriptions             // subscriptions started
	Connections               // WebSocket connections opened
	numKinds
)

// Limit names each budget in errors (extensions.limit) and metrics
// (kck_refused_total{limit}).
func (k Kind) Limit() string {
	switch k {
	case Requests:
		return "client_requests"
	case Misses:
		return "client_misses"
	case Subscriptions:
		return "client_subscriptions"
	case Connections:
		return "client_connections"
	}
	return "client_kind_" + strconv.Itoa(int(k))
}

// Kinds lists the budgets.
func Kinds() []Kind { return []Kind{Requests, Misses, Subscriptions, Connections} }

// Rate is a token bucket: PerSecond tokens are added each second, up to
// Burst. PerSecond 0 turns the budget off.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) on() bool { return r.PerSecond > 0 }

// Config configures a Limiter.
type Config struct {
	// Rates are the budgets by Kind; a zero Rate is off.
	Requests, Misses, Subscriptions, Connections Rate
	// Claim names the token claim that identifies a client; default "sub".
	Claim string
	// TrustedProxies are the networks whose X-Forwarded-For is believed:
	// a request from one of them is the client of the first address in
	// that header, from the right, that is not itself trusted.
	TrustedProxies []netip.Prefix
	// MaxBytes bounds the memory the clients' buckets take. Default 4 MiB.
	MaxBytes uint64
	// Now is the clock; default time.Now. Tests inject one.
	Now func() time.Time
}

// ErrRateLimited is what every refusal wraps.
var ErrRateLimited = errors.New("rate limited")

// Error is a refusal: the client's budget of Kind is spent for now.
type Error struct {
	Kind       Kind
	Rate       Rate
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	what := map[Kind]string{Requests: "requests", Misses: "primer runs (reads of values not cached)",
		Subscriptions: "subscriptions started", Connections: "WebSocket connections opened"}[e.Kind]
	return fmt.Sprintf("rate limited: this client may make %g %s a second (a burst of %d); retry after %s",
		e.Rate.PerSecond, what, e.Rate.Burst, e.RetryAfter.Round(time.Millisecond))
}

func (e *Error) Is(target error) bool { return target == ErrRateLimited }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1,
// for the Retry-After header.
func (e *Error) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// Key identifies a client: a claim's value (ID) or, without one, an
// address (Addr). It is comparable and holds no pointer but ID's.
type Key struct {
	ID   string
	Addr netip.Addr
}

func (k Key) String() string {
	if k.ID != "" {
		return "token:" + k.ID
	}
	return k.Addr.String()
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg    Config
	rates  [numKinds]Rate
	seed   maphash.Seed
	shards [numShards]shard
	start  time.Time // times are kept as nanoseconds since start
}

const numShards = 64

// entryBytes is what one client's entry weighs besides its ID: the map's
// slot and bucket overhead, the key, four buckets (measured, rounded up; see
// TestMemoryBound).
const entryBytes = 176

type shard struct {
	mu       sync.Mutex
	m        map[Key]*entry
	bytes    uint64
	maxBytes uint64
}

type entry struct {
	b    [numKinds]bucket
	seen int64 // last Allow, ns since start
}

// bucket is a token bucket: tokens as of at (ns since start).
type bucket struct {
	tokens float64
	at     int64
}

// New returns a Limiter, or nil when every budget is off.
func New(cfg Config) (*Limiter, error) {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 4 << 20
	}
	if cfg.Claim == "" {
		cfg.Claim = "sub"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, seed: maphash.MakeSeed(), start: cfg.Now()}
	l.rates = [numKinds]Rate{cfg.Requests, cfg.Misses, cfg.Subscriptions, cfg.Connections}
	on := false
	for k, r := range l.rates {
		if r.PerSecond < 0 || (r.on() && r.Burst < 1) || math.IsInf(r.PerSecond, 0) || math.IsNaN(r.PerSecond) {
			return nil, fmt.Errorf("ratelimit: %s: a rate is a positive number of tokens a second with a burst of at least 1", Kind(k).Limit())
		}
		on = on || r.on()
	}
	if !on {
		return nil, nil
	}
	per := cfg.MaxBytes / numShards
	if per < 4*entryBytes {
		return nil, fmt.Errorf("ratelimit: %d bytes hold too few clients", cfg.MaxBytes)
	}
	for i := range l.shards {
		l.shards[i] = shard{m: map[Key]*entry{}, maxBytes: per}
	}
	return l, nil
}

// On reports whether budget k is limited.
func (l *Limiter) On(k Kind) bool { return l != nil && l.rates[k].on() }

// Claim is the claim that names a client.
func (l *Limiter) Claim() string { return l.cfg.Claim }

// Allow spends one token of k's budget for client c, or refuses with an
// *Error saying when one will be there.
func (l *Limiter) Allow(c Key, k Kind) error {
	r := l.rates[k]
	if !r.on() {
		return nil
	}
	now := int64(l.cfg.Now().Sub(l.start))
	sh := &l.shards[l.shardOf(c)]
	sh.mu.Lock()
	e := sh.m[c]
	if e == nil {
		e = sh.add(c, now, l)
	}
	e.seen = now
	b := &e.b[k]
	tokens := b.level(r, now)
	if tokens < 1 {
		b.tokens, b.at = tokens, now
		sh.mu.Unlock()
		wait := time.Duration((1 - tokens) / r.PerSecond * float64(time.Second))
		return &Error{Kind: k, Rate: r, RetryAfter: max(wait, time.Millisecond)}
	}
	b.tokens, b.at = tokens-1, now
	sh.mu.Unlock()
	return nil
}

// Refund gives back a token Allow spent for work that was not done (a miss
// another caller's computation answered).
func (l *Limiter) Refund(c Key, k Kind) {
	r := l.rates[k]
	if !r.on() {
		return
	}
	now := int64(l.cfg.Now().Sub(l.start))
	sh := &l.shards[l.shardOf(c)]
	sh.mu.Lock()
	if e := sh.m[c]; e != nil {
		b := &e.b[k]
		b.tokens, b.at = min(b.level(r, now)+1, float64(r.Burst)), now
	}
	sh.mu.Unlock()
}

// level is the bucket's tokens at now.
func (b *bucket) level(r Rate, now int64) float64 {
	return min(float64(r.Burst), b.tokens+float64(now-b.at)*r.PerSecond/float64(time.Second))
}

func (l *Limiter) shardOf(c Key) int {
	return int(maphash.Comparable(l.seed, c) % numShards)
}

// add makes c's entry, with full buckets, evicting others while the shard
// is over its bytes. Called with the shard locked.
func (sh *shard) add(c Key, now int64, l *Limiter) *entry {
	w := uint64(entryBytes + len(c.ID))
	for sh.bytes+w > sh.maxBytes && len(sh.m) > 0 {
		sh.evict(now, l)
	}
	e := &entry{}
	for k, r := range l.rates {
		e.b[k] = bucket{tokens: float64(r.Burst), at: now}
	}
	sh.m[c] = e
	sh.bytes += w
	return e
}

// evictSample is how many entries an eviction looks at (Go's map iteration
// starts at a random place, so this samples the shard).
const evictSample = 8

// evict drops one entry of a sample: the one whose fresh burst, should it
// come back, would give away the fewest tokens (an idle client, its buckets
// full again, gives away none), of equals the least recently seen. So a
// client that is being limited keeps its entry while clients with tokens to
// spare are there to go: a stream of newcomers does not reset its limit.
func (sh *shard) evict(now int64, l *Limiter) {
	var (
		victim Key
		least  = math.Inf(1)
		oldest int64
		n      int
	)
	for k, e := range sh.m {
		gift := 0.0 // the burst fractions a fresh entry would give back
		for i, r := range l.rates {
			if r.on() {
				gift += 1 - e.b[i].level(r, now)/float64(r.Burst)
			}
		}
		if gift < least || (gift == least && e.seen < oldest) {
			victim, least, oldest = k, gift, e.seen
		}
		if gift <= 0 {
			break
		}
		if n++; n >= evictSample {
			break
		}
	}
	delete(sh.m, victim)
	sh.bytes -= uint64(entryBytes + len(victim.ID))
}

// Clients returns how many clients the limiter holds buckets for.
func (l *Limiter) Clients() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Bytes returns what the clients' entries weigh, by entryBytes.
func (l *Limiter) Bytes() uint64 {
	var n uint64
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.bytes
		sh.mu.Unlock()
	}
	return n
}
