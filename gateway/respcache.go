package gateway

import (
	"bytes"
	"hash/maphash"
	"net/http"

	"github.com/maypok86/otter/v2"

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
type responseCache struct {
	seed    maphash.Seed
	entries *otter.Cache[uint64, *respEntry]
	c       versions
}

// versions tells the current version of a product's fresh in-process value:
// a *cache.Cache.
type versions interface {
	Peek(key string) (version uint64, ok bool)
}

var _ versions = (*cache.Cache)(nil)

type respEntry struct {
	ident       []byte
	public      bool // read only public products: the same for every caller
	contentType []string
	body        []byte
	deps        []dep
	reads       []graph.Read // for a GET's caching headers
}

type dep struct {
	key     string
	version uint64
}

func newResponseCache(c versions, maxBytes uint64) (*responseCache, error) {
	entries, err := otter.New(&otter.Options[uint64, *respEntry]{
		MaximumWeight: maxBytes,
		Weigher: func(_ uint64, e *respEntry) uint32 {
			w := len(e.ident) + len(e.body) + 160*len(e.deps) + 128
			return uint32(min(w, 1<<31))
		},
	})
	if err != nil {
		return nil, err
	}
	return &responseCache{seed: maphash.MakeSeed(), entries: entries, c: c}, nil
}

func (rc *responseCache) hash(ident []byte) uint64 {
	return maphash.Bytes(rc.seed, ident)
}

// get returns the cached response for ident if it is still current.
func (rc *responseCache) get(h uint64, ident []byte) (*respEntry, bool) {
	e, ok := rc.entries.GetIfPresent(h)
	if !ok || !bytes.Equal(e.ident, ident) {
		return nil, false
	}
	for _, d := range e.deps {
		if v, ok := rc.c.Peek(d.key); !ok || v != d.version {
			return nil, false
		}
	}
	return e, true
}

func (rc *responseCache) put(h uint64, ident []byte, public bool, header http.Header, body []byte, reads []graph.Read) {
	e := &respEntry{
		ident:       bytes.Clone(ident),
		public:      public,
		contentType: []string{header.Get("Content-Type")},
		body:        bytes.Clone(body),
		deps:        make([]dep, len(reads)),
		reads:       reads,
	}
	for i, r := range reads {
		e.deps[i] = dep{key: r.Key, version: r.Version}
	}
	rc.entries.Set(h, e)
}

// recorder passes a response through while keeping a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.buf.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
