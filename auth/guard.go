package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kck-go/kck/primers"
)

// Guard enforces the access policies declared in a registry (primers.Auth)
// for the caller in a context. Every surface asks it before reading the
// cache or running an updater: typed fields, product(key), /fetch, /update,
// the mutations. It is read-only after NewGuard and safe for concurrent use.
//
// With auth off (on false) it admits everything, except per-user products
// (KeyBy): they have no key without a caller's claims, so they are refused
// as UNAUTHENTICATED.
type Guard struct {
	reg *primers.Registry
	on  bool
}

// NewGuard returns the guard of reg's policies; on says whether tokens are
// verified (the caller is then in the context, see WithPrincipal).
func NewGuard(reg *primers.Registry, on bool) *Guard {
	return &Guard{reg: reg, on: on}
}

// On reports whether access is enforced.
func (g *Guard) On() bool { return g.on }

// Undeclared lists, sorted, the products and updaters that declare no
// policy: with auth on they admit any verified token.
func (g *Guard) Undeclared() []string {
	var out []string
	for _, p := range g.reg.Products() {
		if p.Auth.IsZero() {
			out = append(out, p.Name)
		}
	}
	for _, name := range g.reg.UpdaterNames() {
		if g.reg.UpdaterAuth(name).IsZero() {
			out = append(out, "updater "+name)
		}
	}
	sort.Strings(out)
	return out
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, fmt.Sprintf(format, args...))
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrForbidden, fmt.Sprintf(format, args...))
}

// FieldKey returns the key a typed field reads, its arguments being args,
// once the caller may read it; the cache reads it as it is (cache.GetKey),
// without formatting and parsing it again. A per-user product's KeyBy
// claims are appended from the caller's token: they are not arguments.
func (g *Guard) FieldKey(ctx context.Context, name string, args ...any) (primers.Key, error) {
	p := g.reg.Product(name)
	if p == nil {
		return g.reg.Key(name, args...) // the registry's own error
	}
	if len(p.Auth.KeyBy) > 0 {
		if len(args) != len(p.Params) {
			return primers.Key{}, fmt.Errorf("%w: %s takes %d parameters, got %d", primers.ErrBadParams, name, len(p.Params), len(args))
		}
		pr, err := g.keyedCaller(ctx, p)
		if err != nil {
			return primers.Key{}, err
		}
		full := make([]any, 0, len(args)+len(p.Auth.KeyBy))
		full = append(full, args...)
		for _, claim := range p.Auth.KeyBy {
			v, ok := pr.Claim(claim)
			if !ok {
				return primers.Key{}, forbidden("product %s is keyed by the token's %s claim, which it lacks", name, claim)
			}
			full = append(full, v)
		}
		args = full
	}
	k, err := g.reg.Key(name, args...)
	if err != nil {
		return primers.Key{}, err
	}
	if err := g.authorize(ctx, p, k); err != nil {
		return primers.Key{}, err
	}
	return k, nil
}

// keyedCaller is the caller a per-user product is keyed by.
func (g *Guard) keyedCaller(ctx context.Context, p *primers.Product) (*Principal, error) {
	if !g.on {
		return nil, unauthenticated("product %s is per user and needs a verified token: auth is off", p.Name)
	}
	pr := PrincipalFrom(ctx)
	if pr == nil {
		return nil, unauthenticated("product %s needs a token", p.Name)
	}
	return pr, nil
}

// ReadKey parses a key (product(key), /fetch, an updater's affected keys)
// and returns it canonical once the caller may read it. A key of a product
// that is not registered (a value only ever Set) needs kck:admin.
func (g *Guard) ReadKey(ctx context.Context, key string) (string, error) {
	if !g.on {
		// Auth off: only per-user products are refused; other keys go to
		// the cache as they are, parsed there (or not, on a hit) as before.
		name, _, _ := strings.Cut(key, "/")
		if p := g.reg.Product(name); p == nil || len(p.Auth.KeyBy) == 0 {
			return key, nil
		}
	}
	k, err := g.reg.ParseKey(key)
	if errors.Is(err, primers.ErrUnknownProduct) {
		// A value only ever Set: with auth on, for operators only.
		if err := g.Admin(ctx); err != nil {
			return "", err
		}
		return key, nil
	}
	if err != nil {
		return "", err
	}
	if err := g.authorize(ctx, g.reg.Product(k.Name), k); err != nil {
		return "", err
	}
	return k.String(), nil
}

// authorize checks the caller against p's policy for key k.
func (g *Guard) authorize(ctx context.Context, p *primers.Product, k primers.Key) error {
	a := p.Auth
	if len(a.KeyBy) > 0 && !g.on {
		_, err := g.keyedCaller(ctx, p)
		return err
	}
	if !g.on || a.Public {
		return nil
	}
	pr := PrincipalFrom(ctx)
	if pr == nil {
		return unauthenticated("product %s needs a token", p.Name)
	}
	for _, s := range a.Scopes {
		if !pr.HasScope(s) {
			return forbidden("product %s needs scope %s", p.Name, s)
		}
	}
	params := p.KeyParams()
	for prm, claim := range a.Bind {
		i := indexOf(params, prm)
		if v, ok := pr.Claim(claim); i < 0 || !ok || v != k.Segment(i) {
			return forbidden("product %s: parameter %s must be the token's %s claim", p.Name, prm, claim)
		}
	}
	for j, claim := range a.KeyBy {
		i := len(p.Params) + j
		if v, ok := pr.Claim(claim); !ok || v != k.Segment(i) {
			return forbidden("product %s is per user: its %s must be the token's own", p.Name, claim)
		}
	}
	return nil
}

func indexOf(ps []primers.Param, name string) int {
	for i, p := range ps {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// Update checks that the caller may run updater name with input: its
// scopes, and each bound input field (top-level) equal to its claim. An
// unknown updater is left to the cache (NOT_FOUND) once a token is given.
func (g *Guard) Update(ctx context.Context, name string, input json.RawMessage) error {
	if !g.on {
		return nil
	}
	a := g.reg.UpdaterAuth(name)
	if _, err := g.reg.Updater(name); err != nil {
		if PrincipalFrom(ctx) == nil {
			return unauthenticated("updaters need a token")
		}
		return nil
	}
	if a.Public {
		return nil
	}
	pr := PrincipalFrom(ctx)
	if pr == nil {
		return unauthenticated("updater %s needs a token", name)
	}
	for _, s := range a.Scopes {
		if !pr.HasScope(s) {
			return forbidden("updater %s needs scope %s", name, s)
		}
	}
	if len(a.Bind) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return fmt.Errorf("%w: updater %s: input must be a JSON object", primers.ErrBadInput, name)
	}
	for field, claim := range a.Bind {
		want, ok := pr.Claim(claim)
		got, present := inputString(fields[field])
		if !ok || !present || got != want {
			return forbidden("updater %s: input %s must be the token's %s claim", name, field, claim)
		}
	}
	return nil
}

// inputString reads a JSON string, number or bool as a binding compares it.
func inputString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	return claimString(v)
}

// Admin checks that the caller holds kck:admin (refresh, invalidate, the
// operator endpoints). With auth off everyone does.
func (g *Guard) Admin(ctx context.Context) error {
	if !g.on {
		return nil
	}
	pr := PrincipalFrom(ctx)
	if pr == nil {
		return unauthenticated("operator actions need a token with scope %s", primers.AdminScope)
	}
	if !pr.HasScope(primers.AdminScope) {
		return forbidden("operator actions need scope %s", primers.AdminScope)
	}
	return nil
}
