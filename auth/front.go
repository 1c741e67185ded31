package auth

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// tokenFront is a small two-way set-associative table of verified tokens in
// front of the Verifier's cache: a hit costs a hash, two atomic loads and a
// compare, with no lock and no clock read. (Reading the monotonic clock
// costs about 50 ns on the machines measured, a quarter of a lookup through
// the cache, and a whole GraphQL response-cache hit costs about 1 µs.)
//
// Time comes from a coarse wall clock (JWT times are wall times, as the
// parser's checks are) that a goroutine sets every frontTick. The
// front answers only for a token with more than frontMargin left before its
// exp plus the leeway on that clock, and sends every other to the cache,
// which checks exp on the real clock: a late tick can only send more
// tokens the slow way, unless it is later than frontMargin.
type tokenFront struct {
	seed  maphash.Seed
	slots []atomic.Pointer[frontEntry] // a power of two, at least 2
	mask  uint64
	now   atomic.Int64 // unix nanoseconds, set every frontTick

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type frontEntry struct {
	token string
	p     *Principal
	until int64 // unix nanoseconds: exp plus the leeway
}

// The table takes a quarter of Config.CacheBytes: a power of two of slots,
// two to a set, each holding a token of at most frontMaxToken bytes (most
// are far shorter; a longer one goes to the cache alone).
const (
	frontMaxToken  = 1024
	frontSlotBytes = frontMaxToken + 64
	frontMaxSlots  = 4096
	frontTick      = 50 * time.Millisecond
	frontMargin    = 5 * time.Second
)

// frontSlots is how many slots fit in a quarter of cacheBytes; 0 for none.
func frontSlots(cacheBytes int64) int {
	n := 0
	for s := 2; s <= frontMaxSlots && int64(s)*frontSlotBytes <= cacheBytes/4; s *= 2 {
		n = s
	}
	return n
}

func newTokenFront(slots int) *tokenFront {
	f := &tokenFront{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[frontEntry], slots), mask: uint64(slots - 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	f.now.Store(time.Now().UnixNano())
	go func() {
		defer close(f.done)
		t := time.NewTicker(frontTick)
		defer t.Stop()
		for {
			select {
			case <-f.stop:
				return
			case now := <-t.C:
				f.now.Store(now.UnixNano())
			}
		}
	}()
	return f
}

func (f *tokenFront) close() {
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
}

// set returns the two slots token may be in, and a hash bit that picks
// which one a new token replaces when both are taken.
func (f *tokenFront) set(token string) (a, b *atomic.Pointer[frontEntry], second bool) {
	h := maphash.String(f.seed, token)
	i := h & f.mask &^ 1
	return &f.slots[i], &f.slots[i+1], h>>63 == 1
}

// get returns token's principal when the table holds it with more than
// frontMargin to live.
func (f *tokenFront) get(token string) (*Principal, bool) {
	if len(token) > frontMaxToken {
		return nil, false
	}
	a, b, _ := f.set(token)
	e := a.Load()
	if e == nil || e.token != token {
		if e = b.Load(); e == nil || e.token != token {
			return nil, false
		}
	}
	if e.until-f.now.Load() <= int64(frontMargin) {
		return nil, false
	}
	return e.p, true
}

// put remembers a verified token in its set: in a free slot, else in place
// of one of the two.
func (f *tokenFront) put(token string, p *Principal, until time.Time) {
	if len(token) > frontMaxToken || until.UnixNano()-f.now.Load() <= int64(frontMargin) {
		return // one get would not answer
	}
	a, b, second := f.set(token)
	e := &frontEntry{token: token, p: p, until: until.UnixNano()}
	switch ea, eb := a.Load(), b.Load(); {
	case ea == nil || ea.token == token:
		a.Store(e)
	case eb == nil || eb.token == token:
		b.Store(e)
	case second:
		b.Store(e)
	default:
		a.Store(e)
	}
}

func (f *tokenFront) clear() {
	for i := range f.slots {
		f.slots[i].Store(nil)
	}
}
