package gateway

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"
)

// CORS for browser apps on another origin (a Vite dev server, an Angular
// app on its own host). github.com/rs/cors rather than our own: preflight
// handling has many small rules (Access-Control-Request-Headers matched
// case-insensitively, Vary on every answer so a CDN keeps origins apart,
// wildcard subdomains, no Allow-Origin "*" with credentials, Private
// Network Access) that it gets right, is widely used and has no
// dependencies.

// corsHeaders are the request headers Apollo Client and urql send: the
// JSON body, the token, Apollo's client awareness and CSRF-prevention
// headers, and conditional GETs.
var corsHeaders = []string{
	"Content-Type", "Accept", "Authorization",
	"Apollographql-Client-Name", "Apollographql-Client-Version",
	"Apollo-Require-Preflight", "X-Apollo-Operation-Name",
	"If-None-Match",
}

// newCORS returns the CORS handler for origins, or nil when there are
// none (same origin only: no CORS headers at all).
func newCORS(origins []string) *cors.Cors {
	if len(origins) == 0 {
		return nil
	}
	o := cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: corsHeaders,
		// What a client may read besides the safelisted headers.
		ExposedHeaders:   []string{"ETag", "WWW-Authenticate", "Allow"},
		AllowCredentials: true,
		MaxAge:           600,
	}
	if slices.Contains(origins, "*") {
		// rs/cors answers "*" literally, which browsers refuse on a
		// request with credentials; any origin is allowed by echoing it.
		// The gateway reads no cookies (tokens come in Authorization), so
		// credentials give a foreign page nothing of ours.
		o.AllowedOrigins = nil
		o.AllowOriginFunc = func(string) bool { return true }
	}
	return cors.New(o)
}

// preflights fronts rs/cors with what it leaves out. It matches a
// preflight's Access-Control-Request-Headers only as browsers spell it
// (lower case, sorted, no spaces, each name once) and refuses any other
// spelling with a bare 204, though RFC 9110 makes field names
// case-insensitive and lists unordered: a proxy or a non-browser client
// spelling it "Content-Type, Authorization" was refused for naught. The
// list is put in the browsers' form first. And a refused preflight is
// logged (at most once per interval, with the count since), since the page
// that sent it sees only that the browser blocked the request.
type preflights struct {
	next     http.Handler
	log      *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newPreflights(c *cors.Cors, next http.Handler, log *slog.Logger) *preflights {
	return &preflights{next: c.Handler(next), log: log, interval: 10 * time.Second}
}

func (p *preflights) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		p.next.ServeHTTP(w, r)
		return
	}
	if vals, ok := r.Header["Access-Control-Request-Headers"]; ok {
		r.Header["Access-Control-Request-Headers"] = []string{normalHeaderList(vals)}
	}
	p.next.ServeHTTP(w, r)
	if w.Header().Get("Access-Control-Allow-Origin") == "" {
		p.refused(r)
	}
}

// maxRequestHeaders bounds the names a preflight may list: more is no
// browser's request, and is left to rs/cors to refuse.
const maxRequestHeaders = 64

// normalHeaderList spells a list of header names as browsers do: lower
// case, sorted, each once, comma-separated without spaces.
func normalHeaderList(vals []string) string {
	var names []string
	for _, v := range vals {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				names = append(names, n)
			}
			if len(names) > maxRequestHeaders {
				return strings.Join(vals, ",")
			}
		}
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ",")
}

func (p *preflights) refused(r *http.Request) {
	p.mu.Lock()
	now := time.Now()
	if !p.last.IsZero() && now.Sub(p.last) < p.interval {
		p.suppressed++
		p.mu.Unlock()
		return
	}
	n := p.suppressed
	p.last, p.suppressed = now, 0
	p.mu.Unlock()
	p.log.Warn("CORS preflight refused: the origin, method or a request header is not allowed (see --cors-origins)",
		"origin", short(r.Header.Get("Origin")), "method", short(r.Header.Get("Access-Control-Request-Method")),
		"headers", short(r.Header.Get("Access-Control-Request-Headers")), "path", short(r.URL.Path), "not_logged_since_last", n)
}

// short bounds what a log line repeats of a request.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
