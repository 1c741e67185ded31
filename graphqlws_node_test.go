package main

import (
	"context"
	"testing"
	"time"

	"github.com/kck-go/kck/internal/browsertest"
)

// graphql-ws's own client, in Node, against two gateways of one cluster
// (one Cassandra keyspace, one Postgres): subscribe, a change through the
// other gateway pushed, reconnect with sinceVersion, missed versions
// (browser/graphql-ws-client.mjs).
func TestGraphQLWSClientInNode(t *testing.T) {
	t.Parallel()
	a, b, _ := gatewayPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	browsertest.Run(t, ctx, "graphql-ws-client.mjs", a, b)
}
