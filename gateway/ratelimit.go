package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/ratelimit"
)

// Per-client rate limits (Options.RateLimit): each client, by its token's
// claim or its address, has a token bucket per budget. A request to the
// API (/graphql over HTTP, /fetch, /update) spends one request token after
// its token is verified and before anything else, the response cache
// included: a refusal is 429 with Retry-After and code RATE_LIMITED, and
// costs a map lookup. A WebSocket upgrade spends a connection token instead
// (a subscription, one of the subscription budget: graph refuses it with
// the protocol's error), and a request's reads spend a miss token for each
// primer run they cause, beside the request's own miss budget (a key
// refused is served from the store or refused with RATE_LIMITED, like one
// past --max-misses-per-request). Probes, metrics, the playground and the
// console are not counted.

// limitedPath reports whether a path is the API's.
func limitedPath(p string) bool {
	return p == "/graphql" || p == "/fetch" || p == "/update" || strings.HasPrefix(p, "/fetch/")
}

// allowRequest spends a request token of the caller p of r, or answers
// 429 and returns false. A WebSocket upgrade is left to serveWebSocket.
func (s *Server) allowRequest(w http.ResponseWriter, r *http.Request, p *auth.Principal) bool {
	if !limitedPath(r.URL.Path) || gqlhttp.IsWebSocket(r) || !s.rl.On(ratelimit.Requests) {
		return true
	}
	if err := s.rl.Allow(s.rl.Client(p, s.rl.Address(r)), ratelimit.Requests); err != nil {
		s.refuseRate(w, r, err)
		return false
	}
	return true
}

// refuseRate answers a request refused by the rate limiter, in its route's
// shape.
func (s *Server) refuseRate(w http.ResponseWriter, r *http.Request, err error) {
	cls := apierror.Classify(err)
	s.limits.onRefused(cls.Limit)
	retryAfter(w, err)
	if r.URL.Path == "/graphql" {
		writeGraphQLStatus(w, cls.Status, cls.Code, cls.Message)
		return
	}
	writeError(w, cls.Status, cls.Code, cls.Message)
}

// retryAfter sets Retry-After for a rate-limit refusal.
func retryAfter(w http.ResponseWriter, err error) {
	var re *ratelimit.Error
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(re.RetryAfterSeconds()))
	}
}

// missBudget is a request's miss budget: --max-misses-per-request, and its
// client's primer runs over time when those are limited.
func (s *Server) missBudget(ctx context.Context, r *http.Request, p *auth.Principal) context.Context {
	if s.rl.On(ratelimit.Misses) {
		if g := s.rl.Gate(s.rl.Client(p, s.rl.Address(r)), ratelimit.Misses); g != nil {
			return cache.WithMissBudgetGate(ctx, s.opts.MaxMissesPerRequest, g)
		}
	}
	return cache.WithMissBudget(ctx, s.opts.MaxMissesPerRequest)
}
