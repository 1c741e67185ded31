package gateway

import (
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/primers"
)

// PrepareSchema builds and checks the schema extend makes, for registry
// reg (gqlhttp.Handler.Prepare), and returns commit, which serves it from the
// next request on and empties the response cache: a kept response was made
// with the old schema (a field's type, a product's statement may have
// changed), and must not be replayed. On error nothing changes.
func (s *Server) PrepareSchema(extend graph.Extend, reg *primers.Registry) (commit func(), err error) {
	c, err := s.gql.Prepare(extend, reg)
	if err != nil {
		return nil, err
	}
	return func() {
		c()
		// After the swap: a request that reads the new generation runs
		// on the new schema; one that read the old keeps its response
		// under the old identity, which no request builds any more.
		s.schemaGen.Add(1)
		if s.rc != nil {
			s.rc.clear()
		}
	}, nil
}

// Schema is the GraphQL schema served now.
func (s *Server) Schema() *ast.Schema { return s.gql.Schema() }
