// Package graph is KCK's GraphQL API: the gqlgen executable schema, the
// resolvers (thin: product fields are generated, see productfield), the
// error presenter that gives every error an extensions.code, and the
// freshness of every product a response read, in extensions.kck.
package graph

//go:generate go run ./gen

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
)

// Resolver is the dependency-injection root of the resolvers.
type Resolver struct {
	Cache *cache.Cache
	// Auth decides, before the cache is read, whether the caller may read a
	// product, run an updater or act as an operator.
	Auth *auth.Guard

	subs   *subscriptions // nil: subscriptions are not served
	tracer trace.Tracer   // nil: no tracing (see Options.TracerProvider)
}
