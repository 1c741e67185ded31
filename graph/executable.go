package graph

import (
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// Extend makes the schema served from the compiled one and the resolver
// (see gateway/gqlhttp's Options.Extend and package graph/dynamic).
type Extend func(compiled graphql.ExecutableSchema, r *Resolver) (graphql.ExecutableSchema, error)

// Executable is the executable schema s makes over r: s is an application's
// own gqlgen package, generated with the productfield plugin (see
// examples/own-module); nil: KCK's schema.graphqls. It is the schema before
// any extension.
func Executable(s func(*Resolver) graphql.ExecutableSchema, r *Resolver) graphql.ExecutableSchema {
	if s != nil {
		return s(r)
	}
	return NewExecutableSchema(Config{Resolvers: r})
}

// Served is the compiled schema the gateway serves with s (nil: KCK's own),
// before any Extend: what introspection shows of a gateway with no
// extension, SDL prints.
func Served(s func(*Resolver) graphql.ExecutableSchema) *ast.Schema {
	return Executable(s, &Resolver{}).Schema()
}
