// Package gqlhttp serves KCK's GraphQL schema (package graph) over HTTP and
// WebSocket at /graphql: gqlgen's server with KCK's transports (POST, GET,
// batches, WebSocket), the body checks, the document limits and trusted
// documents, the parsed-query and APQ caches, the error presenter that gives
// every error an extensions.code, and the freshness of every product a
// response read, in extensions.kck. The gateway mounts the Handler behind
// its response cache, which keeps a response by the Collector Serve returns.
package gqlhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/trusted"
)

// Options configure the GraphQL handler.
type Options struct {
	Cache  *cache.Cache
	Logger *slog.Logger
	// DisableIntrospection turns off schema introspection: a document that
	// asks for __schema or __type is refused before it is validated.
	DisableIntrospection bool
	// Limits bound what one document may cost (see Limits).
	Limits Limits
	// QueryCacheBytes bounds the parsed-query cache, APQCacheBytes the
	// automatic-persisted-query cache. Defaults 16 MiB and 4 MiB.
	QueryCacheBytes, APQCacheBytes uint64
	// OnRefused, when set, is told the limit each refusal names (for
	// metrics). OnValidated is called for each document gqlgen validates
	// (one the parsed-query cache holds is not validated again).
	OnRefused   func(limit string)
	OnValidated func()
	// Guard enforces the products' access policies on every field, with
	// the caller in the request's context (auth.WithPrincipal). Nil: auth
	// off.
	Guard *auth.Guard
	// Subscriptions configure subscriptions over WebSocket.
	Subscriptions SubscriptionOptions
	// Registerer receives the subscription metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// TracerProvider, when set, makes each product field read in a sampled
	// trace a span (kck.field <name>) of the request's. Nil: none.
	TracerProvider trace.TracerProvider
	// Schema builds the executable schema over the resolver: an
	// application's own gqlgen package, generated with the productfield
	// plugin (see examples/own-module). Nil: KCK's schema.graphqls.
	Schema func(*graph.Resolver) graphql.ExecutableSchema
	// Trusted, when set, holds the trusted documents (see trusted.go); its
	// manifest is validated against the schema here. Nil: every document
	// may run.
	Trusted *trusted.Store
	// Extend, when set, extends the compiled schema: the schema served is
	// the one it returns over the compiled one (package graph/dynamic adds
	// the SQL products' typed fields). Handler.Prepare replaces it while
	// the gateway runs.
	Extend graph.Extend
}

// Handler is the /graphql handler: POST, GET and WebSocket.
type Handler struct {
	conns *connSet
	// The schema served is swapped whole by Prepare (see reload.go):
	// gqlgen's server over it, with its parsed-query and APQ caches.
	srv      atomic.Pointer[handler.Server]
	schema   atomic.Pointer[ast.Schema]
	opts     Options
	compiled graphql.ExecutableSchema
	resolver *graph.Resolver
	ws       *wsServer
	apq      *byteCache[string] // shared by the servers of every reload
	mu       sync.Mutex         // serialises Prepare
}

// CloseWebSockets refuses new WebSocket connections from now on (503,
// UNAVAILABLE) and closes the open ones with code, as a gateway that shuts
// down does with 1001 (going away): their clients reconnect, to another
// gateway, and resume with sinceVersion. It returns how many it closed,
// once every one of them has ended, or with ctx's error when ctx ends
// first.
func (h *Handler) CloseWebSockets(ctx context.Context, code int, reason string) (int, error) {
	return h.conns.closeAll(ctx, code, reason)
}

// NewHandler returns the /graphql handler (POST, GET and WebSocket). It
// checks first that every @product field fits its product's declaration.
func NewHandler(o Options) (*Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Guard == nil {
		o.Guard = auth.NewGuard(o.Cache.Registry(), false)
	}
	o.Limits = o.Limits.WithDefaults()
	if o.QueryCacheBytes == 0 {
		o.QueryCacheBytes = 16 << 20
	}
	if o.APQCacheBytes == 0 {
		o.APQCacheBytes = 4 << 20
	}
	o.Subscriptions = o.Subscriptions.WithDefaults()
	r, err := graph.NewResolver(graph.ResolverOptions{
		Cache: o.Cache, Guard: o.Guard, Logger: o.Logger,
		MaxSubscriptionsPerConnection: o.Subscriptions.MaxPerConnection,
		MaxSubscriptions:              o.Subscriptions.MaxTotal,
		SubscriptionReadTimeout:       o.Subscriptions.ReadTimeout,
		OnRefused:                     o.OnRefused,
		SubscriptionError:             subscriptionError(errorPresenter(o.Logger, o.OnRefused)),
		Registerer:                    o.Registerer,
		TracerProvider:                o.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	h := &Handler{conns: newConnSet(), opts: o, resolver: r, ws: &wsServer{opts: o.Subscriptions, log: o.Logger}}
	h.compiled = graph.Executable(o.Schema, h.resolver)
	commit, err := h.Prepare(o.Extend, o.Cache.Registry())
	if err != nil {
		return nil, err
	}
	commit()
	return h, nil
}

// ServeHTTP serves /graphql: POST, GET and WebSocket.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if IsWebSocket(r) {
		h.serveWebSocket(w, r)
		return
	}
	h.Serve(w, r)
}

// Serve runs a POST or GET request's operations (a batch's too) and returns
// what they did: the products they read and whether the response may be
// replayed (the gateway's response cache keeps it by that). A request
// refused before execution returns a collector that reports Failed.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) *Collector {
	// The schema in force when the request came: a reload swaps it for
	// the next requests, this one finishes on its own.
	srv := h.srv.Load()
	ctx, col := withCollector(r.Context())
	ok, batch := checkBody(w, r, h.opts.OnRefused, h.opts.Limits.MaxBatch)
	if !ok {
		return col
	}
	if batch != nil {
		serveBatch(w, r.WithContext(ctx), batch, srv, col)
		return col
	}
	srv.ServeHTTP(&specWriter{ResponseWriter: w, col: col}, r.WithContext(ctx))
	return col
}

// serveWebSocket runs one subscription connection, unless the gateway is
// shutting down.
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c := &connState{}
	if !h.conns.add(c) {
		w.Header().Set("Retry-After", "1")
		writeGraphQLError(w, http.StatusServiceUnavailable, apierror.Unavailable, "", "this gateway is shutting down: connect to another")
		return
	}
	defer h.conns.remove(c)
	ctx := graph.WithConn(context.WithValue(r.Context(), connKey{}, c), &c.subs)
	h.srv.Load().ServeHTTP(w, r.WithContext(ctx))
}

// server is gqlgen's server over es, with KCK's transports, caches, limits
// and error presenter.
func (h *Handler) server(es graphql.ExecutableSchema) (*handler.Server, error) {
	o := h.opts
	srv := handler.New(es)
	srv.AddTransport(h.ws.transport())
	srv.AddTransport(transport.Options{})
	srv.AddTransport(httpTransport{})
	docs, err := newByteCache(o.QueryCacheBytes, weighDocument)
	if err != nil {
		return nil, fmt.Errorf("gqlhttp: query cache: %w", err)
	}
	// The persisted queries outlive a reload: a query's text is the
	// schema's business only when it is validated, which the new server's
	// query cache does again.
	if h.apq == nil {
		c, err := newByteCache(o.APQCacheBytes, weighQuery)
		if err != nil {
			return nil, fmt.Errorf("gqlhttp: APQ cache: %w", err)
		}
		h.apq = &c
	}
	apq := *h.apq
	srv.SetQueryCache(docs)
	if o.Limits.MaxTokens > 0 {
		srv.SetParserTokenLimit(o.Limits.MaxTokens)
	}
	srv.SetValidationRulesFn(func() *rules.Rules {
		if o.OnValidated != nil {
			o.OnValidated()
		}
		return rules.NewDefaultRules()
	})
	if !o.DisableIntrospection {
		srv.Use(extension.Introspection{})
	}
	// The limiter runs APQ itself, after checking a query and before APQ
	// keeps it.
	srv.Use(&limiter{
		limits: o.Limits, noIntro: o.DisableIntrospection, queryCache: docs,
		apq: &extension.AutomaticPersistedQuery{Cache: apq}, onRefused: o.OnRefused, trusted: o.Trusted,
	})
	srv.Use(freshness{resolver: h.resolver})
	srv.SetErrorPresenter(errorPresenter(o.Logger, o.OnRefused))
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		o.Logger.ErrorContext(ctx, "resolver panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return srv, nil
}

// subscriptionError sends a subscription's refusal as graphql-transport-ws
// (and graphql-ws) define it: the error message for its id, which the
// transport sends for errors added to the context when the stream closes,
// instead of a next carrying them followed by complete (which a client reads
// as a result and then a normal end).
func subscriptionError(present graphql.ErrorPresenterFunc) func(context.Context, error) {
	return func(ctx context.Context, err error) {
		transport.AddSubscriptionError(ctx, present(ctx, err))
	}
}

// errorPresenter gives every error an extensions.code and keeps internal
// details (SQL, stacks) out of responses.
func errorPresenter(logger *slog.Logger, onRefused func(string)) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// gqlgen's own errors (argument coercion and the like).
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{"code": apierror.BadUserInput}
			}
			gqlErr.Message = shortMessage(gqlErr.Message)
			if gqlErr.Path == nil {
				gqlErr.Path = graphql.GetPath(ctx)
			}
			return gqlErr
		}
		ge := graphql.DefaultErrorPresenter(ctx, err)
		// A resolver's error arrives wrapped in a gqlerror whose Error()
		// starts with the location and path ("input:2:3: titleList ...");
		// the message is the cause's alone (locations and path have their
		// own entries).
		cause := err
		if errors.As(err, &gqlErr) && gqlErr.Err != nil {
			cause = gqlErr.Err
		}
		cls := apierror.Classify(cause)
		if cls.Code == apierror.Internal {
			logger.ErrorContext(ctx, "graphql resolver error", "path", ge.Path.String(), "err", err)
		}
		ge.Message = cls.Message
		if ge.Extensions == nil {
			ge.Extensions = map[string]any{}
		}
		ge.Extensions["code"] = cls.Code
		if cls.Limit != "" {
			ge.Extensions["limit"] = cls.Limit
			if onRefused != nil {
				onRefused(cls.Limit)
			}
		}
		return ge
	}
}

// freshness adds extensions.kck.products to every response that read
// products, and marks whether the response may be replayed from cache.
type freshness struct{ resolver *graph.Resolver }

var (
	_ graphql.HandlerExtension    = freshness{}
	_ graphql.ResponseInterceptor = freshness{}
)

func (freshness) ExtensionName() string                   { return "KCKFreshness" }
func (freshness) Validate(graphql.ExecutableSchema) error { return nil }
func (f freshness) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp != nil && f.resolver != nil && graphql.HasOperationContext(ctx) {
		if rd, ok := f.resolver.PopRead(graphql.GetOperationContext(ctx)); ok {
			// A subscription's message: the product version it carries.
			if resp.Extensions == nil {
				resp.Extensions = map[string]any{}
			}
			resp.Extensions["kck"] = map[string]any{"products": []graph.Read{rd}}
		}
	}
	c := collectorFrom(ctx)
	if resp == nil || c == nil {
		return resp
	}
	// A request refused before gqlgen made an operation of it (a body
	// that is not a GraphQL request) has no operation context.
	var op *graphql.OperationContext
	if graphql.HasOperationContext(ctx) {
		op = graphql.GetOperationContext(ctx)
	}
	c.setCacheable(op != nil && op.Operation != nil && op.Operation.Operation == ast.Query && len(resp.Errors) == 0)
	if resp.Data != nil { // nil: refused before execution (gqlgen's DispatchError)
		c.setRan(len(resp.Errors) > 0)
	}
	if reads := c.Reads(); len(reads) > 0 {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["kck"] = map[string]any{"products": reads}
	}
	return resp
}
