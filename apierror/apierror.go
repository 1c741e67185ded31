// Package apierror maps errors from the cache and primers to what clients
// see: a code (GraphQL extensions.code), an HTTP status and a message. It is
// the one place where that mapping is made, for GraphQL and HTTP alike.
// Internal errors never reach a client in detail: their message is generic.
package apierror

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"syscall"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/ratelimit"
)

// The codes clients see.
const (
	BadUserInput = "BAD_USER_INPUT"
	NotFound     = "NOT_FOUND"
	PrimerFailed = "PRIMER_FAILED"
	Conflict     = "CONFLICT"
	Timeout      = "TIMEOUT"
	Internal     = "INTERNAL"
	// LimitExceeded refuses work beyond one of the gateway's limits; the
	// error's extensions.limit names the limit (depth, aliases, root_fields,
	// fields, repeated_fields, complexity, tokens, batch, introspection, misses).
	LimitExceeded = "LIMIT_EXCEEDED"
	// Unauthenticated: no token where one is needed, or a token that is
	// not valid (HTTP 401).
	Unauthenticated = "UNAUTHENTICATED"
	// Forbidden: a valid token without the scope or binding (HTTP 403).
	Forbidden = "FORBIDDEN"
	// Unavailable: something the request needs (the source database, the
	// store) does not answer now; the same request later may pass (HTTP
	// 503). Nothing of a refused mutation was written.
	Unavailable = "UNAVAILABLE"
	// StorageFull: the embedded store's disk is full (HTTP 507). Not a 503:
	// a full disk does not clear itself, an operator must free space, and
	// reads (and cached products) go on meanwhile.
	StorageFull = "STORAGE_FULL"
	// RateLimited: the client's budget over time is spent (package
	// ratelimit; HTTP 429 with Retry-After); extensions.limit names it.
	RateLimited = "RATE_LIMITED"
	// PersistedQueryNotAllowed: a document that is not trusted, in the
	// trusted documents' enforce mode.
	PersistedQueryNotAllowed = "PERSISTED_QUERY_NOT_ALLOWED"
)

// LimitMisses names the per-request bound on primer runs.
const LimitMisses = "misses"

// Class is how one error is shown to a client.
type Class struct {
	Code    string
	Status  int
	Message string
	// Limit names the limit of a LimitExceeded error.
	Limit string
}

// Classify returns the client's view of err.
func Classify(err error) Class {
	var pe *cache.PrimerError
	switch {
	// Access first: an access error may wrap nothing else, and its message
	// is made of fixed words (it never echoes a token).
	case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrUnauthenticated):
		return Class{Code: Unauthenticated, Status: http.StatusUnauthorized, Message: err.Error()}
	case errors.Is(err, auth.ErrForbidden):
		return Class{Code: Forbidden, Status: http.StatusForbidden, Message: err.Error()}
	case errors.Is(err, ratelimit.ErrRateLimited):
		limit := ""
		var re *ratelimit.Error
		if errors.As(err, &re) {
			limit = re.Kind.Limit()
		}
		return Class{RateLimited, http.StatusTooManyRequests, err.Error(), limit}
	case errors.Is(err, cache.ErrTooManyMisses):
		// 429: the same request later, when more of its keys are warm, may pass.
		return Class{LimitExceeded, http.StatusTooManyRequests, err.Error(), LimitMisses}
	case errors.Is(err, primers.ErrMalformedKey), errors.Is(err, primers.ErrBadParams), errors.Is(err, primers.ErrBadInput):
		return Class{BadUserInput, http.StatusBadRequest, err.Error(), ""}
	case errors.Is(err, primers.ErrUnknownProduct), errors.Is(err, cache.ErrNotSet), errors.Is(err, primers.ErrUnknownUpdater),
		errors.Is(err, primers.ErrNoData):
		return Class{NotFound, http.StatusNotFound, err.Error(), ""}
	case errors.Is(err, cache.ErrVersionMismatch):
		return Class{Conflict, http.StatusConflict, err.Error(), ""}
	case errors.Is(err, syscall.ENOSPC):
		return Class{StorageFull, http.StatusInsufficientStorage, "the store's disk is full; writes fail until space is freed", ""}
	case errors.Is(err, primers.ErrUnavailable):
		// Ahead of PrimerError: a primer that failed because its database
		// is down is a 503 (retry later), not a bad gateway.
		msg := "a service this request needs is unavailable; retry later"
		var ue *primers.UnavailableError
		if errors.As(err, &ue) {
			msg = ue.What + " is unavailable; retry later"
		}
		return Class{Unavailable, http.StatusServiceUnavailable, msg, ""}
	case errors.As(err, &pe), errors.Is(err, cache.ErrCycle):
		return Class{PrimerFailed, http.StatusBadGateway, err.Error(), ""}
	case errors.Is(err, context.DeadlineExceeded):
		return Class{Timeout, http.StatusGatewayTimeout, "request timed out", ""}
	}
	return Class{Internal, http.StatusInternalServerError, "internal error", ""}
}

// IsJSON reports whether a request says its body is JSON. Routes that act
// (POST /update, the console's actions) require it: a page on another site
// can make a browser send a form or text/plain POST without asking (no CORS
// preflight), but not an application/json one, so this keeps other sites
// from acting through a visitor's browser on a gateway with auth off.
// A charset other than UTF-8 is refused too: JSON is UTF-8 (RFC 8259), and
// a body the client says is another encoding is not what it meant.
func IsJSON(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	if len(ct) == 1 && ct[0] == "application/json" {
		return true // the common spelling, without parsing (a hit's path)
	}
	if len(ct) != 1 {
		return false
	}
	mt, params, err := mime.ParseMediaType(ct[0])
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// Write answers an HTTP request that is not GraphQL (/fetch, /update, the
// console's API) in the gateway's error shape,
// {"error":{"code":...,"message":...}}: the one writer of it.
func Write(w http.ResponseWriter, status int, code, msg string) {
	out := []byte(`{"error":{"code":`)
	out = appendString(out, code)
	out = append(out, `,"message":`...)
	out = appendString(out, msg)
	out = append(out, "}}\n"...)
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

var jsonType = []string{"application/json"}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}
