// Package primers declares data products: their names and typed parameters,
// the primers that compute them, and the updaters that change their sources.
//
// A product instance is named by a Key (name/arg1/arg2). The Registry turns key
// strings and typed Go values into canonical Keys, rejecting malformed keys,
// unknown names and ill-typed arguments with errors that wrap ErrMalformedKey,
// ErrUnknownProduct or ErrBadParams. The registry is filled at start-up and
// read-only afterwards, so lookups need no lock.
package primers

import (
	"context"
	"encoding/json"
	"errors"
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

// Product declares a data product.
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
	// Augment, when set, folds changes into the current value.
	Augment AugmentFunc
	// AllowEmpty accepts a primer result of JSON null, [] or {}; otherwise such
	// a result is an error, as in KCK ("primer returned no results").
	AllowEmpty bool
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
