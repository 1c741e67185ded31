package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/graph"
)

// GraphQL GET responses (Apollo's persisted-query link with
// useGETForHashedQueries sends them) carry HTTP caching headers derived
// from the products they hold, so a CDN or the browser may keep them:
//
//   - Cache-Control: max-age is the smallest time left before a product
//     turns stale (its soft TTL, else its hard TTL); a product with
//     neither, or a stale one, makes it no-cache (store, but revalidate).
//     private when auth is on and a product is not public (so shared
//     caches never keep it); public otherwise. no-store for a response
//     with errors or one refused before execution.
//   - ETag: a hash of the response bytes, stable across gateways (the
//     values, versions and computedAt come from the shared store);
//     If-None-Match answers 304.

// heldWriter keeps a response's status and body; headers go to the real
// writer's map.
type heldWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldWriter) Header() http.Header { return h.header }
func (h *heldWriter) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *heldWriter) Write(p []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(p)
}

// executeGET runs a GET through gqlgen, keeps the response when it may be
// replayed, and writes it with its caching headers.
func (s *Server) executeGET(w http.ResponseWriter, r *http.Request, p *auth.Principal, ident []byte, shared int) {
	ctx, cancel := s.requestContext(r, p)
	defer cancel()
	hw := &heldWriter{header: w.Header()}
	col := s.gql.Serve(hw, r.WithContext(ctx))
	if hw.status != http.StatusOK {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(hw.status)
		_, _ = w.Write(hw.body.Bytes())
		return
	}
	reads := col.Reads()
	if ident != nil && col.Cacheable() {
		if e := s.keep(ident, shared, true, w.Header(), hw.body.Bytes(), reads); e != nil {
			s.noteKept(ctx)
			s.serveEntry(w, r, e)
			return
		}
	}
	s.writeGET(w, r, &rep{body: hw.body.Bytes()}, reads, col.Failed())
}

// writeGET writes a 200 GET response with its caching headers, or 304.
// Its ETag is rp's (or, for a response not kept, computed here): each
// coding has its own, as each is a different representation.
func (s *Server) writeGET(w http.ResponseWriter, r *http.Request, rp *rep, reads []graph.Read, failed bool) {
	hdr := w.Header()
	// The media type follows Accept; the coding, Accept-Encoding.
	if s.rc != nil && s.rc.comp != nil {
		addVary(hdr, varyAcceptEncoding)
	} else {
		addVary(hdr, varyAccept)
	}
	if failed {
		hdr.Set("Cache-Control", "no-store")
		_, _ = w.Write(rp.body)
		return
	}
	hdr.Set("Cache-Control", s.cacheControl(reads))
	etag := rp.etag
	if etag == "" {
		etag = etagOf(hdr.Get("Content-Type"), rp.body)
	}
	hdr.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeRep(w, rp)
}

func (s *Server) cacheControl(reads []graph.Read) string {
	scope := "public"
	if s.guard.On() {
		for _, rd := range reads {
			if !rd.Public { // noted when it was read
				scope = "private"
				break
			}
		}
	}
	now := s.cache.Now()
	maxAge := time.Duration(-1)
	for _, rd := range reads {
		until := rd.StaleAt
		if until.IsZero() {
			until = rd.ExpiresAt
		}
		if rd.Stale || until.IsZero() {
			// Stale, or never expires but may change at any time (a row
			// change, an update): revalidate each time.
			return scope + ", no-cache"
		}
		if left := until.Sub(now); maxAge < 0 || left < maxAge {
			maxAge = left
		}
	}
	if maxAge < 0 {
		return scope + ", no-cache" // no product: nothing says how long it holds
	}
	return scope + ", max-age=" + strconv.FormatInt(int64(max(0, maxAge/time.Second)), 10)
}

// etagMatch implements If-None-Match's weak comparison over a list.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for c := range strings.SplitSeq(header, ",") {
		c = strings.TrimPrefix(strings.TrimSpace(c), "W/")
		if c == "*" || c == etag {
			return true
		}
	}
	return false
}
