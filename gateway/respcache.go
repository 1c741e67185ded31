package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph"
)

// responseCache replays encoded GraphQL responses. Executing a gqlgen
// operation costs several times what writing its bytes does (see
// bench/README.md), so a repeated query is answered from here as long as
// every product it read is still at the version it read, fresh, in this
// gateway's in-process tier. The first execution was a normal typed one, so
// selection sets, aliases and errors stay exactly what gqlgen produced.
//
// An entry is keyed by the request's identity: method, Accept header and
// body (POST) or raw query string (GET), plus, with auth on, the caller's
// deciding claims unless the response read only public products. Entries are
// checked against the full identity, so a hash collision cannot serve the
// wrong response.
//
// An entry holds its response in identity coding and, once a client has
// asked for them, compressed (see encoding.go): every coding weighs against
// the same byte budget.
type responseCache struct {
	seed    maphash.Seed
	entries *otter.Cache[uint64, *respEntry]
	c       versions
	comp    *compressor // nil: compression off
	minComp int         // bodies shorter than this are served identity only
	// compressions counts bodies compressed, by coding.
	compressions [numCodings]prometheus.Counter
}

// versions tells the current version of a product's fresh in-process value:
// a *cache.Cache. Epoch moves whenever a version may have.
type versions interface {
	Now() time.Time
	Epoch() uint64
	PeekAt(key string, now time.Time) (version uint64, ok bool)
}

var _ versions = (*cache.Cache)(nil)

type respEntry struct {
	hash        uint64 // of ident: the entry's key
	ident       []byte
	public      bool // read only public products: the same for every caller
	contentType []string
	body        []byte
	deps        []dep
	reads       []graph.Read // for a GET's caching headers
	// deadline is the earliest soft or hard expiry of its products (zero:
	// none); checked is 1 + the cache's Epoch when its products were last
	// found at their versions (0: not yet).
	deadline time.Time
	checked  atomic.Uint64
	// identity is the identity representation; coded[c] the body in coding c
	// once compressed (coded[identity] is unused).
	identity rep
	coded    [numCodings]lazyRep
}

// rep is a response body in one coding with its headers' values, computed
// once so that a hit writes them without allocating.
type rep struct {
	body   []byte
	coding coding
	length []string // Content-Length
	etag   string   // for GET: the identity ETag, with the coding as suffix
}

// lazyRep is a coding of an entry, compressed by the first request that
// asks for it while others wait.
type lazyRep struct {
	once sync.Once
	done atomic.Pointer[rep] // nil until compressed
}

func newRep(body []byte, c coding, etag string) *rep {
	if etag != "" && c != identity {
		etag = etag[:len(etag)-1] + "-" + codingNames[c] + `"`
	}
	return &rep{body: body, coding: c, length: []string{strconv.Itoa(len(body))}, etag: etag}
}

// etagOf is a GET response's ETag: a hash of its media type and identity
// bytes, stable across gateways. The media type is in it because the same
// bytes as application/json and as application/graphql-response+json are
// two representations, which a cache must not take for one another.
func etagOf(contentType string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(contentType))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	return `"` + hex.EncodeToString(h.Sum(sum[:0])[:12]) + `"`
}

// weight is what an entry holds, in bytes (with an estimate of its
// bookkeeping).
func (e *respEntry) weight() uint32 {
	w := len(e.ident) + len(e.body) + len(e.identity.etag) + 160*len(e.deps) + 128
	for c := range e.coded {
		if r := e.coded[c].done.Load(); r != nil && r.coding != identity {
			w += len(r.body) + 64
		}
	}
	return uint32(min(w, 1<<31))
}

type dep struct {
	key     string
	version uint64
}

func newResponseCache(c versions, maxBytes uint64, comp *compressor, minComp int, compressions [numCodings]prometheus.Counter) (*responseCache, error) {
	entries, err := otter.New(&otter.Options[uint64, *respEntry]{
		MaximumWeight: maxBytes,
		Weigher:       func(_ uint64, e *respEntry) uint32 { return e.weight() },
	})
	if err != nil {
		return nil, err
	}
	return &responseCache{seed: maphash.MakeSeed(), entries: entries, c: c, comp: comp, minComp: minComp, compressions: compressions}, nil
}

// clear drops every entry (the trusted documents changed).
func (rc *responseCache) clear() { rc.entries.InvalidateAll() }

func (rc *responseCache) hash(ident []byte) uint64 {
	return maphash.Bytes(rc.seed, ident)
}

// get returns the cached response for ident if it is still current.
func (rc *responseCache) get(h uint64, ident []byte) (*respEntry, bool) {
	e, ok := rc.entries.GetIfPresent(h)
	if !ok || !bytes.Equal(e.ident, ident) {
		return nil, false
	}
	now := rc.c.Now() // once: the clock costs more than a lookup
	if !e.deadline.IsZero() && !now.Before(e.deadline) {
		return nil, false // a product turned stale or expired
	}
	// Checked at this epoch already: no product changed since (a response
	// of 300 products costs 300 lookups otherwise).
	epoch := rc.c.Epoch()
	if e.checked.Load() == epoch+1 {
		return e, true
	}
	for _, d := range e.deps {
		if v, ok := rc.c.PeekAt(d.key, now); !ok || v != d.version {
			return nil, false
		}
	}
	e.checked.Store(epoch + 1) // the epoch read before the check
	return e, true
}

// put keeps a response and returns its entry, or nil when the cache did not
// keep it (heavier than its whole budget). get: a GET's, which carries an
// ETag.
func (rc *responseCache) put(h uint64, ident []byte, public, get bool, header http.Header, body []byte, reads []graph.Read) *respEntry {
	e := &respEntry{
		hash:        h,
		ident:       bytes.Clone(ident),
		public:      public,
		contentType: []string{header.Get("Content-Type")},
		body:        bytes.Clone(body),
		deps:        make([]dep, len(reads)),
		reads:       reads,
	}
	etag := ""
	if get {
		etag = etagOf(e.contentType[0], e.body)
	}
	e.identity = *newRep(e.body, identity, etag)
	for i, r := range reads {
		e.deps[i] = dep{key: r.Key, version: r.Version}
		for _, t := range []time.Time{r.StaleAt, r.ExpiresAt} {
			if !t.IsZero() && (e.deadline.IsZero() || t.Before(e.deadline)) {
				e.deadline = t
			}
		}
	}
	rc.entries.Set(h, e)
	if got, ok := rc.entries.GetIfPresent(h); !ok || got != e {
		return nil
	}
	return e
}

// rep returns e's representation in coding c: compressed the first time it
// is asked for (then weighed again against the budget), identity when
// compression is off, the body is short, or compressing did not make it
// shorter.
func (rc *responseCache) rep(e *respEntry, c coding) *rep {
	if c == identity || rc.comp == nil || len(e.body) < rc.minComp {
		return &e.identity
	}
	lr := &e.coded[c]
	if r := lr.done.Load(); r != nil {
		return r
	}
	lr.once.Do(func() {
		rc.compressions[c].Inc()
		out := rc.comp.compress(c, e.body)
		r := &e.identity
		if len(out) < len(e.body) {
			r = newRep(out, c, e.identity.etag)
		}
		lr.done.Store(r)
		// The entry weighs more now: have the cache weigh it again, if it
		// still holds this entry (a newer version may have replaced it).
		rc.entries.ComputeIfPresent(e.hash, func(old *respEntry) (*respEntry, otter.ComputeOp) {
			if old != e {
				return old, otter.CancelOp
			}
			return e, otter.WriteOp
		})
	})
	return lr.done.Load()
}
