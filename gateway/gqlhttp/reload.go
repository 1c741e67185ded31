package gqlhttp

import (
	"errors"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/primers"
)

// Prepare builds the schema extend makes over the compiled one, checks it
// against reg (every @product and @updater field, as at start-up) and the
// trusted documents (each must still validate), and returns commit, which
// makes it the schema served: requests that arrive after it run on the new
// schema, those under way (and WebSocket connections open, with their
// subscriptions) finish on the old one. A nil extend serves the compiled
// schema alone. On error nothing changes. The registry is reg once commit
// is called: the caller publishes it (primers.Registry.Change) between the
// two. One reload at a time: Prepare waits for another Prepare, and the
// caller commits before it prepares again.
func (h *Handler) Prepare(extend graph.Extend, reg *primers.Registry) (commit func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	es := h.compiled
	if extend != nil {
		if es, err = extend(h.compiled, h.resolver); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(graph.CheckBindings(es.Schema(), reg), graph.CheckUpdaters(es.Schema(), reg)); err != nil {
		return nil, err
	}
	srv, err := h.server(es)
	if err != nil {
		return nil, err
	}
	if h.opts.Trusted != nil {
		// Last: it keeps the schema it validated against, for its own
		// reloads.
		if err := h.opts.Trusted.Bind(es.Schema()); err != nil {
			return nil, err
		}
	}
	return func() {
		h.schema.Store(es.Schema())
		h.srv.Store(srv)
	}, nil
}

// Schema is the schema served now.
func (h *Handler) Schema() *ast.Schema { return h.schema.Load() }
