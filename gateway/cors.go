package gateway

import (
	"net/http"
	"slices"

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
