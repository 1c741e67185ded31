package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
)

// With Options.Auth set, every request's bearer token is verified before it
// reaches a handler: an invalid one is answered 401 here, whatever the
// route, and a valid one puts its Principal in the request's context, where
// the Guard (GraphQL resolvers, /fetch, /update) finds it. A request
// without a token goes on as anonymous: it reaches public products only.

// serveAuthenticated verifies the caller, then serves the route. A GraphQL
// request goes straight to its handler with its caller, past the mux (whose
// matching costs a hit about a third of its time): a response-cache hit
// needs only the caller's identity, so the request is copied with the
// caller in its context only when the operation runs (see execute).
func (s *Server) serveAuthenticated(w http.ResponseWriter, r *http.Request) {
	if s.opts.Auth == nil {
		if s.rl != nil && !s.allowRequest(w, r, auth.PrincipalFrom(r.Context())) {
			return
		}
		if r.URL.Path == "/graphql" {
			s.serveGraphQL(w, r, auth.PrincipalFrom(r.Context()))
			return
		}
		s.mux.ServeHTTP(w, r)
		return
	}
	adminToken(r)
	p, err := s.opts.Auth.Authenticate(r)
	if err != nil {
		// A refused token spends its address's request budget: bad tokens
		// are not a way around the limit.
		if s.rl != nil && !s.allowRequest(w, r, nil) {
			return
		}
		s.writeAuthError(w, r, err)
		return
	}
	if p == nil {
		p = auth.PrincipalFrom(r.Context())
	}
	if s.rl != nil && !s.allowRequest(w, r, p) {
		return
	}
	if r.URL.Path == "/graphql" {
		s.serveGraphQL(w, r, p)
		return
	}
	if p == nil {
		s.mux.ServeHTTP(w, r) // anonymous: no request copy
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

// challenge sets WWW-Authenticate (RFC 6750 section 3) for an access error.
func challenge(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="kck", error="invalid_token"`)
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="kck"`)
	case errors.Is(err, auth.ErrForbidden):
		w.Header().Set("WWW-Authenticate", `Bearer realm="kck", error="insufficient_scope"`)
	}
}

// writeAuthError answers a request whose token was refused, in the shape of
// its route: a GraphQL response for /graphql, KCK's error object elsewhere.
func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	cls := apierror.Classify(err)
	challenge(w, err)
	if r.URL.Path != "/graphql" {
		writeError(w, cls.Status, cls.Code, cls.Message)
		return
	}
	writeGraphQLStatus(w, cls.Status, cls.Code, cls.Message)
}

// writeGraphQLStatus answers a GraphQL request refused before gqlgen: a
// GraphQL response with no data entry (it never ran) and status.
func writeGraphQLStatus(w http.ResponseWriter, status int, code, msg string) {
	out := []byte(`{"errors":[{"message":`)
	out = appendJSONString(out, msg)
	out = append(out, `,"extensions":{"code":`...)
	out = appendJSONString(out, code)
	out = append(out, "}}]}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// readable returns, in order, the result of every key the caller may read
// and an access error for each other: each key of a multi-key /fetch is
// decided on its own, before the cache is read.
func (s *Server) readable(ctx context.Context, keys []string) []cache.ItemResult {
	out := make([]cache.ItemResult, len(keys))
	allowed := make([]string, 0, len(keys))
	at := make([]int, 0, len(keys))
	for i, k := range keys {
		out[i].Key = k
		canonical, err := s.guard.ReadKey(ctx, k)
		if err != nil {
			out[i].Err = err
			continue
		}
		allowed = append(allowed, canonical)
		at = append(at, i)
	}
	for j, it := range s.cache.GetMany(ctx, allowed) {
		it.Key = keys[at[j]]
		out[at[j]] = it
	}
	return out
}

// hideUnreadable replaces the affected products of an update the caller may
// not read with their access error: the write happened, the values are not
// theirs to see.
func (s *Server) hideUnreadable(ctx context.Context, items []cache.ItemResult) {
	for i, it := range items {
		if it.Err != nil {
			continue
		}
		if _, err := s.guard.ReadKey(ctx, it.Key); err != nil {
			items[i] = cache.ItemResult{Key: it.Key, Err: err}
		}
	}
}

// operator guards an operator endpoint (/metrics): kck:admin when auth is on.
func (s *Server) operator(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.guard.Admin(r.Context()); err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// callerIdentity is appended to a GraphQL response-cache identity for a
// response that depends on who asked: with auth on, such responses are kept
// per set of deciding claims (anonymous callers share theirs), so one
// caller's response is never replayed to another. A response that read only
// public products is the same for every caller and is kept without it.
func callerIdentity(buf *bytes.Buffer, p *auth.Principal) {
	buf.WriteByte(1)
	if p != nil {
		buf.WriteString(p.Identity())
	}
}
