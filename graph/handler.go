package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
)

// Options configure the GraphQL handler.
type Options struct {
	Cache  *cache.Cache
	Logger *slog.Logger
	// DisableIntrospection turns off schema introspection.
	DisableIntrospection bool
	// Guard enforces the products' access policies on every field, with
	// the caller in the request's context (auth.WithPrincipal). Nil: auth
	// off.
	Guard *auth.Guard
}

// NewHandler returns the /graphql handler (POST and GET). It checks first
// that every @product field fits its product's declaration.
func NewHandler(o Options) (http.Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Guard == nil {
		o.Guard = auth.NewGuard(o.Cache.Registry(), false)
	}
	es := NewExecutableSchema(Config{Resolvers: &Resolver{Cache: o.Cache, Auth: o.Guard}})
	if err := CheckBindings(es.Schema(), o.Cache.Registry()); err != nil {
		return nil, err
	}
	srv := handler.New(es)
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if !o.DisableIntrospection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(freshness{})
	srv.SetErrorPresenter(errorPresenter(o.Logger))
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		o.Logger.Error("resolver panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, _ := WithCollector(r.Context())
		srv.ServeHTTP(w, r.WithContext(ctx))
	}), nil
}

// errorPresenter gives every error an extensions.code and keeps internal
// details (SQL, stacks) out of responses.
func errorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// gqlgen's own errors (argument coercion and the like).
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{"code": apierror.BadUserInput}
			}
			if gqlErr.Path == nil {
				gqlErr.Path = graphql.GetPath(ctx)
			}
			return gqlErr
		}
		ge := graphql.DefaultErrorPresenter(ctx, err)
		cls := apierror.Classify(err)
		if cls.Code == apierror.Internal {
			logger.Error("graphql resolver error", "path", ge.Path.String(), "err", err)
		}
		ge.Message = cls.Message
		if ge.Extensions == nil {
			ge.Extensions = map[string]any{}
		}
		ge.Extensions["code"] = cls.Code
		return ge
	}
}

// freshness adds extensions.kck.products to every response that read
// products, and marks whether the response may be replayed from cache.
type freshness struct{}

var (
	_ graphql.HandlerExtension    = freshness{}
	_ graphql.ResponseInterceptor = freshness{}
)

func (freshness) ExtensionName() string                   { return "KCKFreshness" }
func (freshness) Validate(graphql.ExecutableSchema) error { return nil }
func (freshness) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	c := CollectorFrom(ctx)
	if resp == nil || c == nil {
		return resp
	}
	op := graphql.GetOperationContext(ctx)
	c.setCacheable(op != nil && op.Operation != nil && op.Operation.Operation == ast.Query && len(resp.Errors) == 0)
	if reads := c.Reads(); len(reads) > 0 {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["kck"] = map[string]any{"products": reads}
	}
	return resp
}
