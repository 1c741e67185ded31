// Package api is the titles module's GraphQL API: gqlgen's code for
// schema.graphqls, whose @product fields the productfield plugin resolves
// through KCK's cache.
package api

//go:generate go run github.com/kck-go/kck/graph/gen

import "github.com/kck-go/kck/graph"

// Resolver is the resolvers' root: KCK's, which reads products through the
// cache and checks the caller may.
type Resolver struct{ *graph.Resolver }
