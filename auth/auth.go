// Package auth is KCK's access control: it verifies JWT bearer tokens
// (HS256, RS256, ES256, EdDSA; keys from config or a JWKS URL) into a
// Principal, and enforces the access policy each product and updater
// declares (primers.Auth) before any primer runs.
//
// It promises:
//   - a token is accepted only when signed by a configured key of the
//     algorithm's own type (no "none", no public key used as an HMAC
//     secret), unexpired (exp is required), not before nbf or iat beyond the
//     leeway, and with the configured iss and aud; jku, x5u and embedded jwk
//     headers are never followed;
//   - errors name what was wrong in fixed words and never echo a token;
//   - a verified token is remembered by its exact bytes until its exp, in a
//     bounded cache, so that a repeat costs a map lookup, not a signature
//     check; a change of the key set forgets every remembered token;
//   - a Guard decides before the cache is read, so values, in-flight
//     computations and cached responses of a per-user product are keyed by
//     the caller's claims and never cross callers.
//
// The Principal travels in the request's context (WithPrincipal), so any
// transport that verifies a token — an HTTP header today, a WebSocket
// connection_init payload later — gets the same decisions.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Sentinels: every error of this package wraps exactly one of them, and the
// edge maps them to a status with errors.Is (package apierror).
var (
	// ErrInvalidToken: a token was given and is not acceptable (HTTP 401,
	// UNAUTHENTICATED, WWW-Authenticate error="invalid_token").
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnauthenticated: no token, and the product is not public (401).
	ErrUnauthenticated = errors.New("authentication required")
	// ErrForbidden: a valid token without the scope, or with a binding that
	// does not match (403, insufficient_scope).
	ErrForbidden = errors.New("forbidden")
)

// Principal is the verified caller. It is immutable and shared between the
// requests that present the same token.
type Principal struct {
	// Subject is the sub claim ("" when absent).
	Subject string
	// Expires is the exp claim.
	Expires time.Time

	scopes   []string // sorted, deduplicated
	claims   map[string]any
	identity string
}

// NewPrincipal builds a principal from verified claims; scopeClaims name
// the claims that hold scopes (a space-separated string or an array of
// strings). Verifier calls it; tests and other transports may too.
func NewPrincipal(claims map[string]any, scopeClaims []string) *Principal {
	p := &Principal{claims: claims}
	p.Subject, _ = claimString(claims["sub"])
	if exp, ok := claims["exp"]; ok {
		if f, ok := number(exp); ok {
			p.Expires = time.Unix(int64(f), 0)
		}
	}
	for _, name := range scopeClaims {
		switch v := claims[name].(type) {
		case string:
			p.scopes = append(p.scopes, splitSpaces(v)...)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok && s != "" {
					p.scopes = append(p.scopes, s)
				}
			}
		}
	}
	slices.Sort(p.scopes)
	p.scopes = slices.Compact(p.scopes)
	// The identity keys cached GraphQL responses: every claim that can
	// change a decision (all but the times and the token id), so that two
	// tokens of the same caller share responses and two callers never do.
	// encoding/json sorts map keys: the encoding is canonical.
	id := make(map[string]any, len(claims))
	for k, v := range claims {
		switch k {
		case "exp", "iat", "nbf", "jti":
			continue
		}
		id[k] = v
	}
	b, err := json.Marshal(id)
	if err != nil {
		b = []byte(fmt.Sprintf("%p", p)) // unique: shares with no one
	}
	p.identity = string(b)
	return p
}

func splitSpaces(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == '\n' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}

// Scopes returns the granted scopes, sorted.
func (p *Principal) Scopes() []string { return slices.Clone(p.scopes) }

// HasScope reports whether scope s was granted.
func (p *Principal) HasScope(s string) bool {
	_, ok := slices.BinarySearch(p.scopes, s)
	return ok
}

// Claim returns a claim's value as a binding compares it: a string as is, a
// number in its shortest decimal form, a bool as true or false. Other
// values (arrays, objects) and absent claims are not bindable.
func (p *Principal) Claim(name string) (string, bool) {
	return claimString(p.claims[name])
}

// Identity is a canonical string of the claims that decide access: equal
// for tokens that get the same decisions.
func (p *Principal) Identity() string { return p.identity }

func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if f, err := v.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64), true
		}
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	}
	return 0, false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p (nil: anonymous).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of ctx, or nil for an anonymous one.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
