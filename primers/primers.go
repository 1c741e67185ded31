// Package primers declares data products: their names and typed parameters,
// the primers that compute them, and the updaters that change their sources.
//
// A product instance is named by a Key (name/arg1/arg2). The Registry turns key
// strings and typed Go values into canonical Keys, rejecting malformed keys,
// unknown names and ill-typed arguments with errors that wrap ErrMalformedKey,
// ErrUnknownProduct or ErrBadParams. The registry is filled at start-up;
// afterwards it changes only whole (Registry.Change, when SQL products are
// reloaded), so lookups take no lock.
package primers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Primer computes a product instance. The returned value is encoded as JSON
// (a json.RawMessage or []byte holding JSON is used as is).
type Primer interface {
	Prime(ctx context.Context, k Key) (any, error)
}

// PrimerFunc adapts a function to the Primer interface.
type PrimerFunc func(ctx context.Context, k Key) (any, error)

// Prime calls f.
func (f PrimerFunc) Prime(ctx context.Context, k Key) (any, error) { return f(ctx, k) }

// AugmentFunc folds a change into a product's current JSON value and returns
// the new value, instead of recomputing it. Returning ErrCannotAugment asks
// for a full recomputation instead.
type AugmentFunc func(ctx context.Context, k Key, current json.RawMessage, change any) (any, error)

// ErrCannotAugment tells the cache to fall back to running the primer.
var ErrCannotAugment = errors.New("cannot augment")

// Product declares a data product: the one declaration of everything KCK
// knows of it (its key, its primer, expiry and freshness, warming, periodic
// refresh, domain, sources, the rules that refresh it and who may read it).
// It is plain data: Go code writes it, and source/sqlproduct makes one of
// each SQL file's header. The registry checks it; the cache reads its
// expiry, the scheduler its warming, refresh and domain, the gateway its
// Auth.
type Product struct {
	Name   string
	Params []Param
	// Primer computes an instance on a miss. A product without a primer only
	// holds values that were Set; a miss on it is ErrNotSet.
	Primer Primer
	// TTL is the hard expiry: after it the value is gone from every tier.
	// Zero means never.
	TTL time.Duration
	// SoftTTL is when a value turns stale: it is still served, flagged stale,
	// while a refresh runs in the background. Zero means never.
	SoftTTL time.Duration
	// FreshnessTarget is how old a value may grow ("never older than 30 s"):
	// metrics report each product's age against it. It is a target to
	// watch, not a policy: meeting it takes a refresh schedule shorter than
	// it, or changes that arrive that often. Zero means none.
	FreshnessTarget time.Duration
	// Refresh, when set, recomputes on this schedule the product's
	// instances a gateway holds (its in-process keys and its warmed keys),
	// on every gateway (kck:refresh).
	Refresh Schedule
	// Warm lists keys of the product to compute (or load from the store)
	// when the scheduler starts (kck:warm); WarmKeys, when set, generates
	// more (e.g. one per author id; kck:warm_query).
	Warm     []string
	WarmKeys func(ctx context.Context) ([]string, error)
	// Domain, when set, keeps every member of a domain primed (kck:domain).
	Domain Domain
	// Sources are the source tables whose row changes refresh the
	// product's instances (kck:source), for the change follower and the
	// operator console.
	Sources []Source
	// AfterPrimes are key templates of other products (author/:author_id):
	// when such a key is computed, the instance of this product with the
	// same parameters is refreshed (kck:after_primes). AfterUpdates names
	// updaters whose input names an instance of this product to refresh
	// (kck:after_updates). The SQL products' refresh rules
	// (sqlproduct.Rules) act on them.
	AfterPrimes, AfterUpdates []string
	// Augment, when set, folds changes into the current value.
	Augment AugmentFunc
	// AllowEmpty accepts a primer result of JSON null, [] or {}; otherwise such
	// a result is an error, as in KCK ("primer returned no results").
	AllowEmpty bool
	// Auth says who may read the product when the gateway verifies tokens
	// (see Auth). Its KeyBy claims become trailing string parameters of the
	// key, after Params: the primer receives them as arguments.
	Auth Auth

	keyParams []Param // Params, then one String per Auth.KeyBy claim
}

// Domain keeps every member of a domain primed (KCK's domain_key): the
// value of the product named by Key lists parameter sets of the declaring
// product, e.g. [1,2,3] or [[1,"eu"],[2,"us"]] (see
// scheduler.DomainMembers). On each run, once for the cluster, the members
// that are missing are computed and those that are stale refreshed;
// members that leave the domain are no longer refreshed by it.
type Domain struct {
	// Key is the key of the product that lists the members.
	Key string
	// Schedule is how often the domain is checked.
	Schedule Schedule
}

// IsZero reports whether no domain is declared.
func (d Domain) IsZero() bool { return d.Key == "" && d.Schedule.IsZero() }

// Source maps a source table's rows to product instances: Columns[i] is
// the column that holds the value of the product's i-th key parameter (see
// KeyParams). All means a change to any row refreshes every cached
// instance.
type Source struct {
	Table   string
	Columns []string
	All     bool
}

// KeyParams returns the parameters of the product's keys: Params, then one
// String parameter per Auth.KeyBy claim, named after the claim. They are
// what the primer receives; a GraphQL field takes only Params.
func (p *Product) KeyParams() []Param {
	if p.keyParams == nil {
		return p.Params
	}
	return p.keyParams
}

// AdminScope is the scope operator actions need: refresh, invalidate and the
// operator endpoints.
const AdminScope = "kck:admin"

// Auth is who may read a product or run an updater, declared beside it so
// that one declaration drives the field, the key, the freshness and access.
// It applies when the gateway verifies tokens; with auth off every product
// is open except per-user ones (KeyBy), which need a token to be keyed by.
//
// The zero Auth admits any verified token (no particular scope) and refuses
// anonymous callers: nothing is public unless it says so.
type Auth struct {
	// Public admits every caller, with or without a token. It excludes
	// Scopes, Bind and KeyBy.
	Public bool
	// Scopes must all be in the token's scope claim.
	Scopes []string
	// Bind maps a parameter (an updater: a top-level input field) to a
	// claim: the caller may only ask for the value the claim holds, e.g.
	// {"author_id": "sub"}. A missing claim or another value is FORBIDDEN.
	Bind map[string]string
	// KeyBy makes a per-user product: the values of these claims (e.g.
	// "sub") are appended to its key, hidden from its GraphQL field but part
	// of every stored key, so values never cross users. Products only.
	KeyBy []string
}

// IsZero reports whether nothing was declared.
func (a Auth) IsZero() bool {
	return !a.Public && len(a.Scopes) == 0 && len(a.Bind) == 0 && len(a.KeyBy) == 0
}

func (a Auth) check(what string, params []string, product bool) error {
	if a.Public && (len(a.Scopes) > 0 || len(a.Bind) > 0 || len(a.KeyBy) > 0) {
		return fmt.Errorf("%s: a public Auth takes no scopes, bindings or key_by claims", what)
	}
	for _, s := range a.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			return fmt.Errorf("%s: bad scope %q", what, s)
		}
	}
	for prm, claim := range a.Bind {
		if claim == "" {
			return fmt.Errorf("%s: binding of %q names no claim", what, prm)
		}
		if product && !slices.Contains(params, prm) {
			return fmt.Errorf("%s: binds %q, which is not a parameter", what, prm)
		}
	}
	if len(a.KeyBy) > 0 && !product {
		return fmt.Errorf("%s: key_by is for products", what)
	}
	for _, claim := range a.KeyBy {
		if !validName(claim) {
			return fmt.Errorf("%s: key_by claim %q must match [A-Za-z_][A-Za-z0-9_]*", what, claim)
		}
		if slices.Contains(params, claim) {
			return fmt.Errorf("%s: key_by claim %q has the name of a parameter", what, claim)
		}
	}
	return nil
}

// kindsDeclarer is implemented by typed primers (Func1, Func2, ...) so that
// registration can check the declared parameters against the Go function.
type kindsDeclarer interface {
	paramKinds() []Kind
}

// ErrNoData marks a product instance that has no data, such as the title
// list of an author who does not exist. The edge answers it with "not found".
// Primers wrap it: fmt.Errorf("%w: no author %d", primers.ErrNoData, id). The
// cache returns it for a primer result of null, [] or {} unless the product
// sets AllowEmpty.
var ErrNoData = errors.New("no data")

// ErrUnavailable marks a failure of something a primer, an updater or the
// store depends on (a database that does not answer, a store without a
// quorum): the same request later may succeed. The edge answers it with
// "unavailable" (HTTP 503). Wrap it with Unavailable, which keeps the
// cause's detail out of what clients see.
var ErrUnavailable = errors.New("unavailable")

// UnavailableError is an ErrUnavailable naming what is unavailable.
type UnavailableError struct {
	// What is unavailable, in words safe to show a client ("the source
	// database", "the store").
	What string
	// Err is the cause, for logs.
	Err error
}

// Unavailable wraps err as an ErrUnavailable of what.
func Unavailable(what string, err error) error { return &UnavailableError{What: what, Err: err} }

func (e *UnavailableError) Error() string { return e.What + " unavailable: " + e.Err.Error() }

// Unwrap returns ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Reader reads a product through the cache from inside a primer, so that the
// read is served from cache and recorded as a dependency.
type Reader interface {
	ReadProduct(ctx context.Context, key string) (json.RawMessage, error)
}

type readerKey struct{}

// WithReader returns a context whose primers read products through r. The
// cache sets it before it calls a primer.
func WithReader(ctx context.Context, r Reader) context.Context {
	return context.WithValue(ctx, readerKey{}, r)
}

// ErrNoReader is returned by Read when the context has no Reader: the primer
// was called outside a cache.
var ErrNoReader = errors.New("no product reader in context")

// Read reads another product from inside a primer and decodes its JSON into v.
func Read(ctx context.Context, key string, v any) error {
	r, ok := ctx.Value(readerKey{}).(Reader)
	if !ok {
		return ErrNoReader
	}
	raw, err := r.ReadProduct(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
