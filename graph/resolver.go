// Package graph is KCK's GraphQL schema and its resolvers: the gqlgen
// executable schema, the resolvers (thin: product fields are generated, see
// productfield) and how they read, decode, follow (subscriptions) and
// update products. GraphQL over HTTP and WebSocket (the handler, its
// transports, limits, caches and error presenter) is gateway/gqlhttp's,
// which imports this package; this package imports nothing of it.
package graph

//go:generate go run ./gen

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/tracing"
)

// Resolver is the dependency-injection root of the resolvers.
type Resolver struct {
	Cache *cache.Cache
	// Auth decides, before the cache is read, whether the caller may read a
	// product, run an updater or act as an operator.
	Auth *auth.Guard

	subs   *subscriptions // nil: subscriptions are not served
	tracer trace.Tracer   // nil: no tracing (see ResolverOptions.TracerProvider)
}

// ResolverOptions configure NewResolver. gateway/gqlhttp's handler makes
// them from its own Options.
type ResolverOptions struct {
	Cache *cache.Cache
	// Guard enforces the products' access policies on every field. Nil:
	// auth off.
	Guard  *auth.Guard
	Logger *slog.Logger
	// MaxSubscriptionsPerConnection bounds the subscriptions one
	// connection (Conn) runs at once, MaxSubscriptions those of the whole
	// gateway; not positive: no bound. SubscriptionReadTimeout bounds each
	// read of a product for a subscriber (zero: 30 s).
	MaxSubscriptionsPerConnection, MaxSubscriptions int
	SubscriptionReadTimeout                         time.Duration
	// OnRefused, when set, is told the limit each refused subscription
	// names (for metrics).
	OnRefused func(limit string)
	// SubscriptionError sends err, that of a subscription refused on a
	// WebSocket connection (its context has a Conn), as the protocol's
	// error message for the subscription's id (gateway/gqlhttp: through
	// the handler's error presenter to gqlgen's transport). Nil: such a
	// subscription gets the field's error, as over HTTP.
	SubscriptionError func(ctx context.Context, err error)
	// Registerer receives the subscription metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// TracerProvider, when set, makes each product field read in a sampled
	// trace a span (kck.field <name>) of the request's. Nil: none.
	TracerProvider trace.TracerProvider
}

// NewResolver returns the resolver that serves subscriptions with o's
// bounds and traces product fields with o's tracer. A Resolver made as a
// literal serves queries and mutations, not subscriptions.
func NewResolver(o ResolverOptions) (*Resolver, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Guard == nil {
		o.Guard = auth.NewGuard(o.Cache.Registry(), false)
	}
	if o.SubscriptionReadTimeout == 0 {
		o.SubscriptionReadTimeout = 30 * time.Second
	}
	subs, err := newSubscriptions(o)
	if err != nil {
		return nil, err
	}
	r := &Resolver{Cache: o.Cache, Auth: o.Guard, subs: subs}
	if o.TracerProvider != nil {
		r.tracer = o.TracerProvider.Tracer(tracing.Scope)
	}
	return r, nil
}
