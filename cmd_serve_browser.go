package main

import (
	"errors"
	"flag"
	"time"

	"github.com/kck-go/kck/gateway"
)

// browserConfig is what front-end clients meet: subscriptions over
// WebSocket and CORS.
type browserConfig struct {
	MaxSubscriptions, MaxSubscriptionsPerConnection, MaxConnections int
	KeepAlive                                                       time.Duration
	// CORSOrigins are the origins allowed to call the gateway from a
	// browser (and to open its WebSocket); empty: same origin only.
	CORSOrigins hostList
}

func browserFlags(fs *flag.FlagSet, c *browserConfig) {
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", envInt("KCK_MAX_SUBSCRIPTIONS", 10000), "most GraphQL subscriptions the gateway runs at once; -1: no limit (KCK_MAX_SUBSCRIPTIONS)")
	fs.IntVar(&c.MaxSubscriptionsPerConnection, "max-subscriptions-per-connection", envInt("KCK_MAX_SUBSCRIPTIONS_PER_CONNECTION", 100), "most subscriptions one WebSocket connection runs at once; -1: no limit (KCK_MAX_SUBSCRIPTIONS_PER_CONNECTION)")
	fs.IntVar(&c.MaxConnections, "max-websocket-connections", envInt("KCK_MAX_WEBSOCKET_CONNECTIONS", 10000), "most WebSocket (subscription) connections open at once; more are refused with 503; -1: no limit (KCK_MAX_WEBSOCKET_CONNECTIONS)")
	fs.DurationVar(&c.KeepAlive, "ws-keepalive", envDuration("KCK_WS_KEEPALIVE", 15*time.Second), "interval of the WebSocket keepalive (graphql-ws ka, graphql-transport-ws ping) (KCK_WS_KEEPALIVE)")
	c.CORSOrigins = envList("KCK_CORS_ORIGINS")
	fs.Var(&c.CORSOrigins, "cors-origins", "origins allowed to call /graphql, /fetch and /update from a browser and to open subscriptions, comma-separated (https://app.example.com, http://localhost:5173, https://*.example.com, or * for any); empty: same origin only (KCK_CORS_ORIGINS)")
}

func (c browserConfig) validate() error {
	if c.MaxSubscriptions == 0 || c.MaxSubscriptionsPerConnection == 0 || c.MaxConnections == 0 {
		return errors.New("serve: a subscription limit of 0 would refuse every subscription: give a positive value, or -1 for no limit")
	}
	if c.KeepAlive <= 0 {
		return errors.New("serve: --ws-keepalive must be positive")
	}
	return nil
}

func (c browserConfig) gatewayOptions(o *gateway.Options) {
	o.Subscriptions.MaxTotal = c.MaxSubscriptions
	o.Subscriptions.MaxPerConnection = c.MaxSubscriptionsPerConnection
	o.Subscriptions.MaxConnections = c.MaxConnections
	o.Subscriptions.KeepAlive = c.KeepAlive
	o.CORSOrigins = c.CORSOrigins
}
