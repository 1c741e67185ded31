package gateway

// The response cache's hit and keep flow for /graphql (the cache itself is
// respcache.go; a GET's HTTP caching, httpcache.go): the request's identity,
// a hit served in the coding the client prefers, a miss run through the
// GraphQL handler (gateway/gqlhttp) and kept when its Collector allows.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
)

// serveGraphQL answers from the response cache when it can, else runs the
// operation through gqlgen as caller p and keeps the response if it may be
// replayed.
func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if gqlhttp.IsWebSocket(r) {
		// A subscription connection: no response cache, and no request
		// timeout (it lives as long as the client wants; each product
		// read for it is bounded on its own). A token in the upgrade
		// request's header is its caller until connection_init says.
		if p != nil && auth.PrincipalFrom(r.Context()) != p {
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		s.serveWebSocket(w, r)
		return
	}
	if r.Method == http.MethodHead {
		// HEAD is GET without the body (net/http drops what is written):
		// the same entry, the same headers, Content-Length included.
		r = r.WithContext(r.Context())
		r.Method = http.MethodGet
	}
	if r.Method == http.MethodPost && !apierror.IsJSON(r) {
		// Before the response cache: a POST it may not run gets the same
		// answer whatever is cached (the cache's identity has no media
		// type, as every body it keeps was application/json).
		writeGraphQLStatus(w, http.StatusUnsupportedMediaType, apierror.BadUserInput, gqlhttp.UnsupportedMediaMessage)
		return
	}
	if s.rc == nil || (r.Method != http.MethodPost && r.Method != http.MethodGet) {
		s.execute(w, r, p, nil, nil, 0)
		return
	}
	rb := s.bufs.Get().(*reqBuf)
	buf := &rb.Buffer
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			rb.limit.R = nil // the request's body is not kept
			s.bufs.Put(rb)
		}
	}()
	// The identity: method, Accept (it picks the response content type),
	// then the query string or the body; then, for a response that depends
	// on who asks, the caller (see callerIdentity).
	buf.WriteString(r.Method)
	buf.WriteByte(0)
	for i, a := range r.Header["Accept"] {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(a)
	}
	buf.WriteByte(0)
	if g := s.schemaGen.Load(); g > 0 {
		// The schema served (a reload moves it): a response made with
		// another is never found again.
		buf.Write(binary.LittleEndian.AppendUint64(rb.gen[:0], g))
	}
	var body []byte
	if r.Method == http.MethodGet {
		buf.WriteString(r.URL.RawQuery)
	} else {
		start := buf.Len()
		if err := rb.readBody(w, r.Body, s.opts.MaxBodyBytes); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, apierror.BadUserInput, "request body too large")
				return
			}
			writeError(w, http.StatusBadRequest, apierror.BadUserInput, "could not read request body")
			return
		}
		body = buf.Bytes()[start:]
	}
	shared := buf.Len()
	h := s.rc.hash(buf.Bytes())
	// With auth off every response is shared; with auth on, only one that
	// read public products alone.
	if e, ok := s.rc.get(h, buf.Bytes()); ok && (e.public || !s.guard.On()) {
		s.rcOutcome(r.Context(), "hit")
		s.serveCached(w, r, e)
		return
	}
	if s.guard.On() {
		callerIdentity(buf, p)
		h = s.rc.hash(buf.Bytes())
		if e, ok := s.rc.get(h, buf.Bytes()); ok {
			s.rcOutcome(r.Context(), "hit")
			s.serveCached(w, r, e)
			return
		}
	}
	s.rcMisses.Inc()
	s.rcOutcome(r.Context(), "miss")
	s.execute(w, r, p, body, buf.Bytes(), shared)
}

// reqBuf holds a request's cache identity while it is served (pooled).
type reqBuf struct {
	bytes.Buffer
	limit io.LimitedReader
	gen   [8]byte
}

// readBody appends body to the buffer, at most max bytes. It is
// http.MaxBytesReader without its allocation per request (the hit path's
// only one; the limiting reader is pooled with the buffer): past max it
// returns a *http.MaxBytesError and, through a MaxBytesReader made then,
// has the server close the connection after the answer, as that reader
// does.
func (rb *reqBuf) readBody(w http.ResponseWriter, body io.Reader, max int64) error {
	rb.limit = io.LimitedReader{R: body, N: max + 1} // one byte past max tells
	start := rb.Len()
	if _, err := rb.ReadFrom(&rb.limit); err != nil {
		return err
	}
	if n := int64(rb.Len() - start); n > max {
		over := rb.Bytes()[start+int(max):]
		_, err := http.MaxBytesReader(w, io.NopCloser(bytes.NewReader(over)), 0).Read(make([]byte, 1))
		return err
	}
	return nil
}

func (s *Server) serveCached(w http.ResponseWriter, r *http.Request, e *respEntry) {
	s.rcHits.Inc()
	s.serveEntry(w, r, e)
}

// serveEntry writes a kept response in the coding the request prefers.
func (s *Server) serveEntry(w http.ResponseWriter, r *http.Request, e *respEntry) {
	hdr := w.Header()
	hdr["Content-Type"] = e.contentType
	c := identity
	if s.rc.comp != nil {
		c = negotiate(r.Header["Accept-Encoding"])
	}
	rp := s.rc.rep(e, c)
	if r.Method == http.MethodGet {
		s.writeGET(w, r, rp, e.reads, false)
		return
	}
	if s.rc.comp != nil {
		addVary(hdr, varyEncoding)
	}
	writeRep(w, rp)
}

// Vary values, shared by every response (full capacity, so an append
// elsewhere copies them).
var (
	varyEncoding       = []string{"Accept-Encoding"}
	varyAccept         = []string{"Accept"}
	varyAcceptEncoding = []string{"Accept", "Accept-Encoding"}
)

// addVary adds vals to the Vary header, after what is there (CORS adds
// Origin).
func addVary(hdr http.Header, vals []string) {
	if old := hdr["Vary"]; len(old) > 0 {
		hdr["Vary"] = append(old, vals...)
		return
	}
	hdr["Vary"] = vals
}

// writeRep writes a body with its Content-Encoding and Content-Length.
func writeRep(w http.ResponseWriter, rp *rep) {
	hdr := w.Header()
	if rp.coding != identity {
		hdr["Content-Encoding"] = contentEncoding[rp.coding]
	}
	if rp.length != nil {
		hdr["Content-Length"] = rp.length
	}
	_, _ = w.Write(rp.body)
}

// keep stores a response that may be replayed: under ident[:shared], for
// every caller, when it read only public products (or auth is off), else
// under the whole ident. It returns the entry, nil if the cache did not
// keep it.
func (s *Server) keep(ident []byte, shared int, get bool, header http.Header, body []byte, reads []graph.Read) *respEntry {
	public := true
	for _, rd := range reads {
		public = public && rd.Public // noted when it was read
	}
	if public || !s.guard.On() {
		ident = ident[:shared]
	}
	s.rcStores.Inc()
	return s.rc.put(s.rc.hash(ident), ident, public, get, header, body, reads)
}

// execute runs the request through gqlgen as caller p. With an ident, it
// records the response and keeps it when the operation allows.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, p *auth.Principal, body, ident []byte, shared int) {
	if r.Method == http.MethodGet {
		s.executeGET(w, r, p, ident, shared)
		return
	}
	ctx, cancel := s.requestContext(r, p)
	defer cancel()
	r = r.WithContext(ctx)
	if body != nil {
		r.Body = readCloser{bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
	} else if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	}
	if ident == nil {
		s.gql.ServeHTTP(w, r)
		return
	}
	// Held, not streamed: a response that is kept is served from its
	// entry, in the coding the client asks for.
	hw := &heldWriter{header: w.Header()}
	col := s.gql.Serve(hw, r)
	if hw.status == http.StatusOK && col.Cacheable() {
		if e := s.keep(ident, shared, false, w.Header(), hw.body.Bytes(), col.Reads()); e != nil {
			s.noteKept(ctx)
			s.serveEntry(w, r, e)
			return
		}
	}
	if hw.status != 0 {
		w.WriteHeader(hw.status)
	}
	_, _ = w.Write(hw.body.Bytes())
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
