package gateway

import (
	"errors"
	"github.com/kck-go/kck/apierror"
	"net/http"
	"strings"

	"github.com/kck-go/kck/auth"
)

// The operator console (package admin) is mounted at /admin behind the
// operator gate: with auth on, a token with scope kck:admin. A browser
// cannot send a bearer header when it opens a page, so /admin/login takes
// the token once and keeps it in a cookie (HttpOnly, SameSite=Strict, path
// /admin) that stands for the Authorization header on /admin routes only.
// SameSite=Strict and the JSON bodies the actions take keep other sites
// from acting through it.

const adminCookie = "kck_admin_token"

// adminToken puts the console's cookie in the Authorization header of a
// request under /admin that has none.
func adminToken(r *http.Request) {
	if r.Header.Get("Authorization") != "" || (r.URL.Path != "/admin" && !strings.HasPrefix(r.URL.Path, "/admin/")) {
		return
	}
	if c, err := r.Cookie(adminCookie); err == nil && c.Value != "" {
		r.Header.Set("Authorization", "Bearer "+c.Value)
	}
}

// adminGate serves h to operators; a browser without a token is sent to
// the login page when it opens /admin.
func (s *Server) adminGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.guard.Admin(r.Context()); err != nil {
			if r.Method == http.MethodGet && r.URL.Path == "/admin" && errors.Is(err, auth.ErrUnauthenticated) {
				http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
				return
			}
			s.writeAuthError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>KCK admin: sign in</title></head>
<body style="font:15px system-ui,sans-serif;max-width:36rem;margin:3rem auto">
<h1>KCK admin</h1>
<p>This gateway checks tokens: the console needs one with scope <code>kck:admin</code>.</p>
<form method="post" action="/admin/login">
<p><label>Token<br><textarea name="token" rows="5" cols="60" required></textarea></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
`

func (s *Server) handleAdminLoginPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	_, _ = w.Write([]byte(loginPage))
}

// handleAdminLogin keeps the posted token in the console's cookie. It is
// not checked here: the next request to /admin is, as any request is.
func (s *Server) handleAdminLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	if tok == "" {
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "give a token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: tok, Path: "/admin", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}
