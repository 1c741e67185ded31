package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/ratelimit"
)

// limitMetrics count what the gateway refused, by limit, and the documents
// gqlgen validated (a document the parsed-query cache holds is not
// validated again).
type limitMetrics struct {
	refused   *prometheus.CounterVec
	validated prometheus.Counter
}

// limitNames are the refusal labels, created up front so that /metrics shows
// every limit at 0.
var limitNames = []string{
	gqlhttp.LimitTokens, gqlhttp.LimitDepth, gqlhttp.LimitAliases, gqlhttp.LimitRootFields, gqlhttp.LimitFields, gqlhttp.LimitRepeats,
	gqlhttp.LimitComplexity, gqlhttp.LimitBatch, gqlhttp.LimitIntrospection, apierror.LimitMisses,
	graph.LimitSubscriptions, graph.LimitSubscriptionsPerConnection, gqlhttp.LimitConnections,
	ratelimit.Requests.Limit(), ratelimit.Misses.Limit(), ratelimit.Subscriptions.Limit(), ratelimit.Connections.Limit(),
}

func newLimitMetrics(reg prometheus.Registerer) (*limitMetrics, error) {
	m := &limitMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_refused_total",
			Help: "Requests, documents or fields refused by a limit, by limit: tokens, depth, aliases, root_fields, fields, repeated_fields, complexity, batch, introspection (GraphQL documents), misses (product reads beyond a request's miss budget), subscriptions, subscriptions_per_connection and websocket_connections; per client over time (--client-rate and the like): client_requests, client_misses, client_subscriptions, client_connections.",
		}, []string{"limit"}),
		validated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_graphql_validations_total",
			Help: "GraphQL documents validated (a document the parsed-query cache holds is not validated again).",
		}),
	}
	for _, l := range limitNames {
		m.refused.WithLabelValues(l)
	}
	for _, c := range []prometheus.Collector{m.refused, m.validated} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *limitMetrics) onRefused(limit string) { m.refused.WithLabelValues(limit).Inc() }
