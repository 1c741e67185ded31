package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph/model"
	"github.com/kck-go/kck/tracing"
)

// resolveProduct is the body of every @product field: build the key from the
// field's arguments (and a per-user product's claims), check the caller may
// read it, read it through the cache, note its freshness, decode.
func resolveProduct[T any](ctx context.Context, r *Resolver, name string, args ...any) (_ T, err error) {
	var zero T
	ctx, span := r.fieldSpan(ctx, name)
	var res cache.Result
	defer func() { endField(span, res, err) }()
	key, err := r.Auth.FieldKey(ctx, name, args...)
	if err != nil {
		return zero, err
	}
	res, err = r.Cache.GetKey(ctx, key) // recorded by the cache
	if err != nil {
		return zero, err
	}
	return decodeProduct[T](res)
}

// readProduct is the product(key) field: any product as JSON.
func (r *Resolver) readProduct(ctx context.Context, key string) (_ *model.Product, err error) {
	ctx, span := r.fieldSpan(ctx, "")
	var res cache.Result
	defer func() { endField(span, res, err) }()
	key, err = r.Auth.ReadKey(ctx, key)
	if err != nil {
		return nil, err
	}
	res, err = r.Cache.Get(ctx, key) // recorded by the cache
	if err != nil {
		return nil, err
	}
	return toProduct(res), nil
}

// fieldSpan starts the span of a product field (kck.field and the field's
// name), in a sampled trace when tracing is on; endField ends it with
// what the read found.
func (r *Resolver) fieldSpan(ctx context.Context, product string) (context.Context, trace.Span) {
	if r.tracer == nil || !tracing.Recording(ctx) {
		return ctx, noop.Span{}
	}
	name, path := "kck.field", ""
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		name, path = name+" "+fc.Field.Name, fc.Path().String()
	}
	return r.tracer.Start(ctx, name, trace.WithAttributes(attribute.String("graphql.field.path", path), tracing.AttrProduct.String(product)))
}

func endField(span trace.Span, res cache.Result, err error) {
	if span.IsRecording() && err == nil && res.Entry != nil {
		span.SetAttributes(tracing.AttrKey.String(res.Key), tracing.AttrTier.String(res.Tier.String()), tracing.AttrStale.Bool(res.Stale))
	}
	tracing.End(span, err)
}

// decodeProduct decodes res's value into the field's Go type.
func decodeProduct[T any](res cache.Result) (T, error) {
	var out T
	if err := json.Unmarshal(res.Value, &out); err != nil {
		return out, fmt.Errorf("product %s does not fit its GraphQL type: %w", res.Key, err)
	}
	return out, nil
}

func toProduct(r cache.Result) *model.Product {
	return &model.Product{
		Key:        r.Key,
		Version:    strconv.FormatUint(r.Version, 10),
		ComputedAt: r.ComputedAt,
		Stale:      r.Stale,
		Value:      r.Value,
	}
}

// Read is one product a response read, at one version (recorded by the
// cache: cache.WithReads).
type Read = cache.Read

// ResolveProduct is the body of an @product field in an application's own
// gqlgen package (the productfield plugin writes the call there; see
// examples/own-module): resolveProduct, exported.
func ResolveProduct[T any](ctx context.Context, r *Resolver, name string, args ...any) (T, error) {
	return resolveProduct[T](ctx, r, name, args...)
}

// SubscribeProduct is the body of an @product subscription field in an
// application's own gqlgen package: subscribeProduct, exported.
func SubscribeProduct[T any](ctx context.Context, r *Resolver, name string, args ...any) (<-chan T, error) {
	return subscribeProduct[T](ctx, r, name, args...)
}

// KCK returns r. An application's own resolver embeds *Resolver; the
// resolvers the productfield plugin writes there reach KCK's through it.
func (r *Resolver) KCK() *Resolver { return r }
