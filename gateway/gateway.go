// Package gateway is KCK's HTTP surface: /graphql (with a response cache in
// front of gqlgen), the playground at /, KCK-style /fetch and /update,
// /healthz, /readyz and /metrics. Errors are mapped to status codes in one
// place (package apierror); a handler never panics on input.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/ratelimit"
	"github.com/kck-go/kck/trusted"
)

// Options configure a Server.
type Options struct {
	// Cache serves the products. Required.
	Cache *cache.Cache
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer and Gatherer wire /metrics; nil uses the Prometheus defaults.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// MaxBodyBytes caps request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// RequestTimeout bounds work done for one request on a miss. Default 30 s.
	RequestTimeout time.Duration
	// ResponseCacheBytes bounds the GraphQL response cache; default 64 MiB.
	// Negative disables it.
	ResponseCacheBytes int64
	// DisableCompression turns off compressed responses: every response
	// is sent in identity coding whatever Accept-Encoding says.
	DisableCompression bool
	// CompressMinBytes is the smallest response body served compressed
	// (zstd or gzip, as Accept-Encoding prefers); shorter ones go out as
	// they are. Default 512: below it the saving is a few dozen bytes of
	// one TCP segment, while the compressed copy still costs its entry
	// memory and the client a decoder. Negative: compress every size.
	// Compression applies to responses kept in the response cache (see
	// encoding.go).
	CompressMinBytes int
	// DisableIntrospection turns off GraphQL schema introspection.
	DisableIntrospection bool
	// DisablePlayground turns off the playground at /.
	DisablePlayground bool
	// PlaygroundQuery is the query the playground opens with; empty: an
	// example on the demo's products with KCK's own schema (Schema nil),
	// else { __typename }.
	PlaygroundQuery string
	// Limits bound what one GraphQL document may cost; QueryCacheBytes and
	// APQCacheBytes bound gqlgen's caches (see gqlhttp.Options).
	Limits                         gqlhttp.Limits
	QueryCacheBytes, APQCacheBytes uint64
	// MaxMissesPerRequest bounds the primer runs one request may cause;
	// reads beyond it are served from the store or refused
	// (LIMIT_EXCEEDED). Default 20; negative: no bound.
	MaxMissesPerRequest int
	// ReadyChecks run for /readyz beside the store's Ping.
	ReadyChecks map[string]func(context.Context) error
	// Auth verifies bearer tokens; the products' declared policies are then
	// enforced on every surface (see auth.go). Nil: auth off, and every
	// client may read, update and invalidate everything.
	Auth *auth.Verifier
	// Admin, when set, is the operator console (package admin), served at
	// /admin and /admin/ behind the operator gate: scope kck:admin with
	// auth on, open with auth off (enabling it is the caller's choice).
	Admin http.Handler
	// Schema is the GraphQL schema over KCK's resolver (see gqlhttp.Options);
	// nil: KCK's own. Extend extends it (gqlhttp.Options.Extend: the SQL
	// products' typed fields); PrepareSchema replaces it while running.
	Schema func(*graph.Resolver) graphql.ExecutableSchema
	Extend graph.Extend
	// Subscriptions configure GraphQL subscriptions over WebSocket at
	// /graphql (bounds, keepalive, allowed origins); the token verifier is
	// Auth.
	Subscriptions gqlhttp.SubscriptionOptions
	// CORSOrigins are the browser origins (https://app.example.com,
	// https://*.example.com, * for any) allowed to call the gateway and to
	// open subscriptions; empty: same origin only.
	CORSOrigins []string
	// Trusted, when set, holds the trusted documents, in log or enforce
	// mode (see package trusted and gateway/gqlhttp's trusted.go). When its manifest
	// changes, the response cache is emptied: it may hold a response of a
	// document no longer trusted.
	Trusted *trusted.Store
	// RateLimit, when set, bounds what each client may ask over time (see
	// package ratelimit and ratelimit.go): requests to /graphql, /fetch and
	// /update, the primer runs its reads cause, subscriptions started and
	// WebSocket connections opened. Nil: no per-client limit.
	RateLimit *ratelimit.Limiter
	// TracerProvider, when set, traces requests (see trace.go): a span per
	// request, the incoming traceparent honoured, the trace in the
	// traceresponse header, and in a sampled trace spans for the response
	// cache and each product field. Nil: no tracing, and an incoming
	// traceparent is ignored.
	TracerProvider trace.TracerProvider
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.ResponseCacheBytes == 0 {
		o.ResponseCacheBytes = 64 << 20
	}
	if o.MaxMissesPerRequest == 0 {
		o.MaxMissesPerRequest = 20
	}
	if o.CompressMinBytes == 0 {
		o.CompressMinBytes = 512
	}
	return o
}

// Server holds the handlers.
type Server struct {
	opts  Options
	cache *cache.Cache
	log   *slog.Logger
	gql   *gqlhttp.Handler
	guard *auth.Guard
	rc    *responseCache // nil when disabled
	// tracer is nil when tracing is off.
	tracer *requestTracer
	mux    *http.ServeMux
	authd  http.Handler // serveAuthenticated, behind CORS when origins are set

	rcHits, rcMisses, rcStores prometheus.Counter
	limits                     *limitMetrics

	// wsOpen counts the WebSocket connections open; wsMax bounds them
	// (negative: no bound).
	wsOpen atomic.Int64
	wsMax  int

	rl *ratelimit.Limiter // nil: no per-client limits

	bufs sync.Pool // *reqBuf

	// readyMu guards notReady: each failing readiness check's last error,
	// so that a probe polling /readyz logs a change, not every poll.
	readyMu  sync.Mutex
	notReady map[string]string

	// draining: the gateway is shutting down (see Drain).
	draining atomic.Bool

	// schemaGen counts the schemas served (PrepareSchema); it is part of
	// a response's cache identity.
	schemaGen atomic.Uint64
}

// WebSocketGoingAway is the close code of the WebSockets a gateway closes
// when it shuts down (RFC 6455's 1001, going away): graphql-ws's client
// retries on it, and a client resumes elsewhere with sinceVersion.
const WebSocketGoingAway = 1001

// Drain starts a shutdown's drain: from now on /readyz answers 503 without
// running its checks, so that load balancers stop sending here, while
// every request is still served; each response but a WebSocket upgrade
// carries "Connection: close", so that clients move their keep-alive
// connections away one response at a time, never one idle under them.
func (s *Server) Drain() { s.draining.Store(true) }

// CloseWebSockets refuses new WebSocket connections (503) and closes the
// open ones with 1001 (going away), then waits until every one has ended
// or ctx ends. It returns how many it closed.
func (s *Server) CloseWebSockets(ctx context.Context) (int, error) {
	return s.gql.CloseWebSockets(ctx, WebSocketGoingAway, "the gateway is shutting down")
}

// New builds the gateway's handlers.
func New(o Options) (*Server, error) {
	o = o.withDefaults()
	if o.Cache == nil {
		return nil, errors.New("gateway: Cache is required")
	}
	lm, err := newLimitMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	guard := auth.NewGuard(o.Cache.Registry(), o.Auth != nil)
	if o.Auth == nil {
		o.Logger.Warn("auth is off: every client may read, update and invalidate everything (set --auth-jwt-secret, --auth-public-key or --auth-jwks-url)")
	} else if open := guard.Undeclared(); len(open) > 0 {
		o.Logger.Warn("auth is on; these declare no policy and admit any valid token", "names", open)
	}
	subs := o.Subscriptions
	subs.Verifier = o.Auth
	subs.OriginPatterns = o.CORSOrigins
	if subs.MaxMessageBytes == 0 {
		subs.MaxMessageBytes = o.MaxBodyBytes // a message is a request
	}
	subs = subs.WithDefaults()
	gql, err := gqlhttp.NewHandler(gqlhttp.Options{
		Subscriptions: subs, Registerer: o.Registerer,
		Cache: o.Cache, Logger: o.Logger, DisableIntrospection: o.DisableIntrospection,
		Limits: o.Limits, QueryCacheBytes: o.QueryCacheBytes, APQCacheBytes: o.APQCacheBytes,
		OnRefused: lm.onRefused, OnValidated: lm.validated.Inc,
		Guard: guard, Schema: o.Schema, Trusted: o.Trusted, Extend: o.Extend, TracerProvider: o.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, cache: o.Cache, log: o.Logger, gql: gql, guard: guard, mux: http.NewServeMux(), notReady: map[string]string{}, limits: lm,
		wsMax: subs.MaxConnections, rl: o.RateLimit, tracer: newRequestTracer(o.TracerProvider)}
	if s.rl != nil {
		if err := o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kck_rate_limit_clients",
			Help: "Clients the per-client rate limiter holds buckets for (bounded by its share of --memory-mb).",
		}, func() float64 { return float64(s.rl.Clients()) })); err != nil {
			return nil, err
		}
	}
	s.bufs.New = func() any { return new(reqBuf) }
	s.authd = http.HandlerFunc(s.serveAuthenticated)
	if c := newCORS(o.CORSOrigins); c != nil {
		// Before auth: a refused token's 401 must still be readable by
		// the page that sent it.
		s.authd = newPreflights(c, s.authd, o.Logger)
	}
	compressions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_graphql_response_compressions_total",
		Help: "GraphQL response bodies compressed for the response cache, by coding: once per kept response and coding asked for.",
	}, []string{"coding"})
	if err := o.Registerer.Register(compressions); err != nil {
		return nil, err
	}
	if o.ResponseCacheBytes > 0 {
		var comp *compressor
		if !o.DisableCompression {
			if comp, err = newCompressor(); err != nil {
				return nil, err
			}
		}
		var counts [numCodings]prometheus.Counter
		for c := zstdCoding; c < numCodings; c++ {
			counts[c] = compressions.WithLabelValues(codingNames[c])
		}
		if s.rc, err = newResponseCache(o.Cache, uint64(o.ResponseCacheBytes), comp, max(o.CompressMinBytes, 0), counts); err != nil {
			return nil, err
		}
	}
	if o.Trusted != nil && s.rc != nil {
		o.Trusted.OnChange(s.rc.clear)
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_graphql_response_cache_total",
		Help: "GraphQL requests by response-cache outcome: hit (replayed), miss (executed), store (executed and kept).",
	}, []string{"outcome"})
	s.rcHits, s.rcMisses, s.rcStores = outcomes.WithLabelValues("hit"), outcomes.WithLabelValues("miss"), outcomes.WithLabelValues("store")
	if err := o.Registerer.Register(outcomes); err != nil {
		return nil, err
	}

	// /graphql is served by serveAuthenticated itself, ahead of the mux.
	if !o.DisablePlayground {
		q := o.PlaygroundQuery
		if q == "" {
			q = schemaQuery
			if sc := gql.Schema(); o.Schema == nil && sc.Query.Fields.ForName("titleList") != nil {
				q = demoQuery // the demo's products are served
			}
		}
		page, err := playgroundPage(q)
		if err != nil {
			return nil, err
		}
		s.mux.Handle("GET /{$}", page)
		s.mux.Handle("GET "+playgroundPrefix+"{file}", playgroundFiles())
	}
	s.mux.HandleFunc("GET /favicon.ico", serveFavicon)
	s.mux.HandleFunc("GET /fetch", s.handleFetch)
	s.mux.HandleFunc("GET /fetch/{key...}", s.handleFetch)
	s.mux.HandleFunc("POST /update", s.handleUpdate)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", s.operator(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	if o.Admin != nil {
		s.mux.Handle("/admin", s.adminGate(o.Admin))
		s.mux.Handle("/admin/", s.adminGate(o.Admin))
		if o.Auth != nil {
			s.mux.HandleFunc("GET /admin/login", s.handleAdminLoginPage)
			s.mux.HandleFunc("POST /admin/login", s.handleAdminLogin)
		}
	}
	return s, nil
}

// ServeHTTP serves every route, turning a panic into a 500.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.tracer != nil && traced(r) {
		if tw, tr, span, ok := s.tracer.start(w, r); ok {
			w, r = tw, tr
			defer s.tracer.end(w, span)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.ErrorContext(r.Context(), "handler panicked", "path", r.URL.Path, "panic", p)
			writeError(w, http.StatusInternalServerError, apierror.Internal, "internal error")
		}
	}()
	if s.draining.Load() && !gqlhttp.IsWebSocket(r) {
		w.Header()["Connection"] = connectionClose
	}
	s.authd.ServeHTTP(w, r)
}

var connectionClose = []string{"close"}

// NewHTTPServer returns an http.Server for h with timeouts set, so that slow
// or idle clients cannot hold connections forever.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining: the gateway is shutting down\n"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var failed []string
	note := func(name string, err error) {
		s.readyMu.Lock()
		defer s.readyMu.Unlock()
		prev, was := s.notReady[name]
		switch {
		case err == nil && was:
			delete(s.notReady, name)
			s.log.Info("ready again", "check", name)
		case err != nil:
			failed = append(failed, name+": "+err.Error())
			// Logged again only when the cause changes: a check may wrap
			// its cause with progress ("warming: ... (266 of 601 keys)").
			if cause := rootCause(err).Error(); !was || prev != cause {
				s.notReady[name] = cause
				s.log.Warn("not ready", "check", name, "err", err)
			}
		}
	}
	note("store", s.cache.Store().Ping(ctx))
	for name, check := range s.opts.ReadyChecks {
		note(name, check(ctx))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			_, _ = w.Write([]byte(f + "\n"))
		}
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// rootCause is the innermost error err wraps (the first, when it joins several).
func rootCause(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if next := u.Unwrap(); next != nil {
				err = next
				continue
			}
		case interface{ Unwrap() []error }:
			if next := u.Unwrap(); len(next) > 0 && next[0] != nil {
				err = next[0]
				continue
			}
		}
		return err
	}
}

var jsonContentType = []string{"application/json"}

// serveWebSocket runs one subscription connection, unless as many as
// allowed are open already: then 503 before the upgrade, LIMIT_EXCEEDED.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if s.rl != nil {
		addr := s.rl.Address(r)
		if err := s.rl.Allow(s.rl.Client(auth.PrincipalFrom(r.Context()), addr), ratelimit.Connections); err != nil {
			s.refuseRate(w, r, err)
			return
		}
		r = r.WithContext(ratelimit.WithClient(r.Context(), s.rl, addr))
	}
	if n := s.wsOpen.Add(1); s.wsMax >= 0 && n > int64(s.wsMax) {
		s.wsOpen.Add(-1)
		s.limits.onRefused(gqlhttp.LimitConnections)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, apierror.LimitExceeded, fmt.Sprintf("this gateway holds %d WebSocket connections, its most (--max-websocket-connections): try another or later", s.wsMax))
		return
	}
	defer s.wsOpen.Add(-1)
	s.gql.ServeHTTP(w, r) // returns when the connection ends
}

// requestContext bounds one request of caller p: its time and the primer
// runs it may cause.
func (s *Server) requestContext(r *http.Request, p *auth.Principal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	if p != nil {
		ctx = auth.WithPrincipal(ctx, p)
	}
	return s.missBudget(ctx, r, p), cancel
}
