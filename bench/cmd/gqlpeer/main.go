// Command gqlpeer is bench/peers' plain gqlgen server: KCK's titleList field
// resolved over pgx on every request, with no cache (the parsed documents
// are cached, as any gqlgen server does).
//
//	gqlpeer -addr 127.0.0.1:19104 -postgres-url URL
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/bench/cmd/gqlpeer/graph"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19104", "listen address")
	url := flag.String("postgres-url", os.Getenv("KCK_POSTGRES_URL"), "database holding the demo tables")
	flag.Parse()
	pool, err := pgxpool.New(context.Background(), *url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gqlpeer:", err)
		os.Exit(1)
	}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{DB: pool}}))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	mux := http.NewServeMux()
	mux.Handle("/graphql", srv)
	fmt.Fprintln(os.Stderr, "gqlpeer:", http.ListenAndServe(*addr, mux))
	os.Exit(1)
}
