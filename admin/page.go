package admin

import (
	"bytes"
	"embed"
	"net/http"
)

// The page and its assets, embedded: the console loads nothing from
// outside, so it works air-gapped. uPlot 1.6.32 (MIT, from npm, byte for
// byte its dist/ files) draws the charts: 51 kB minified with no
// dependency, canvas-based so a chart of a few hundred points redraws in
// well under a millisecond, and maintained since 2019; Chart.js is four
// times its size for features (animations, plugins) a console polling
// every two seconds does not need.
//
//go:embed ui/index.html ui/app.js ui/app.css ui/uPlot.iife.min.js ui/uPlot.min.css ui/LICENSE.uplot
var ui embed.FS

// csp lets the page load only from this gateway. uPlot sets element styles
// from script, which 'unsafe-inline' for styles allows; no inline script
// runs.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// pageHandler serves index.html; with auth off its body says the console is
// open to anyone who can reach the gateway.
func pageHandler(open bool) http.Handler {
	page, err := ui.ReadFile("ui/index.html")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	mode := "closed"
	if open {
		mode = "open"
	}
	page = bytes.Replace(page, []byte(`data-access="closed"`), []byte(`data-access="`+mode+`"`), 1)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(page)
	})
}

// assetHandler serves the embedded scripts and styles under /admin/assets/.
func assetHandler() http.Handler {
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		ct := ""
		for ext, t := range types {
			if len(name) > len(ext) && name[len(name)-len(ext):] == ext {
				ct = t
			}
		}
		b, err := ui.ReadFile("ui/" + name)
		if err != nil || ct == "" || name == "index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
