// Command titles is a team's own KCK gateway: its own GraphQL schema
// (schema.graphqls, generated into api/), one SQL product (sql/) and one Go
// product (products.go), served with everything kck serve does: the same
// flags (titles --help), KCK_* variables and config file; titles schema
// prints its schema.
package main

import (
	"os"

	"github.com/99designs/gqlgen/graphql"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/cli"
	"github.com/kck-go/kck/graph"

	"example.com/titles/api"
)

func main() {
	with := func(c *app.Config) {
		c.Register = register
		c.SQL = sqlProducts()
		c.Schema = func(r *graph.Resolver) graphql.ExecutableSchema {
			return api.NewExecutableSchema(api.Config{Resolvers: &api.Resolver{Resolver: r}})
		}
	}
	// titles schema: the module's GraphQL schema in SDL, as kck schema
	// prints KCK's (for client code generators).
	if len(os.Args) > 1 && os.Args[1] == "schema" {
		os.Exit(cli.Schema(os.Args[2:], os.Stdout, os.Stderr, with))
	}
	os.Exit(cli.Serve(os.Args[1:], os.Stdout, os.Stderr, with))
}
