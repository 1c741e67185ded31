package cli

import (
	"flag"
	"os"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/ratelimit"
)

func limitFlags(f *flags, c *app.LimitsConfig, production *bool) {
	d := app.Defaults().Limits
	f.bool(production, "production", "KCK_PRODUCTION", false, "production defaults: introspection, the playground and the admin console off unless --introspection, --playground or --admin turn them on")
	f.bool(&c.Playground, "playground", "KCK_PLAYGROUND", d.Playground, "serve the GraphQL playground at /")
	l, dl := &c.GraphQL, d.GraphQL
	f.int(&l.MaxTokens, "max-tokens", "KCK_MAX_TOKENS", dl.MaxTokens, "most lexical tokens in a GraphQL document; -1: no limit")
	f.int(&l.MaxDepth, "max-depth", "KCK_MAX_DEPTH", dl.MaxDepth, "deepest selection nesting, fragments expanded; -1: no limit")
	f.int(&l.MaxAliases, "max-aliases", "KCK_MAX_ALIASES", dl.MaxAliases, "most aliased fields in a document; -1: no limit")
	f.int(&l.MaxRootFields, "max-root-fields", "KCK_MAX_ROOT_FIELDS", dl.MaxRootFields, "most top-level fields in an operation; -1: no limit")
	f.int(&l.MaxFields, "max-fields", "KCK_MAX_FIELDS", dl.MaxFields, "most fields in a document, fragments expanded; -1: no limit")
	f.int(&l.MaxRepeats, "max-repeated-fields", "KCK_MAX_REPEATED_FIELDS", dl.MaxRepeats, "most times one response name occurs in one selection set; -1: no limit")
	f.int(&l.MaxComplexity, "max-complexity", "KCK_MAX_COMPLEXITY", dl.MaxComplexity, "highest gqlgen complexity of an operation; -1: no limit")
	f.int(&l.MaxBatch, "max-batch", "KCK_MAX_BATCH", dl.MaxBatch, "accept batches (a JSON array) of at most this many GraphQL requests, each under every limit, sharing one request's miss budget and time; 0: batches refused")
	f.int(&l.ProductCost, "product-cost", "KCK_PRODUCT_COST", dl.ProductCost, "complexity of a field that reads or writes a product (a plain field costs 1)")
	f.int(&c.MaxMisses, "max-misses-per-request", "KCK_MAX_MISSES_PER_REQUEST", d.MaxMisses, "most primer runs one request may cause; the keys beyond are served from the store or refused; -1: no limit")
	f.dur(&c.NegativeTTL, "negative-ttl", "KCK_NEGATIVE_TTL", d.NegativeTTL, "how long a key whose primer found no data answers NOT_FOUND without running it again; 0 turns it off")
}

// productionDefaults applies --production: introspection, the playground
// and the console are off unless a flag, a variable or the config file
// turned them on.
func productionDefaults(f *flags, c *app.Config) {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	asked := func(flagName string) bool {
		_, ok := os.LookupEnv(f.env[flagName])
		return set[flagName] || ok
	}
	if !asked("introspection") {
		c.Introspection = false
	}
	if !asked("playground") {
		c.Limits.Playground = false
	}
	if !asked("admin") {
		c.Admin = false
	}
	// Per-client budgets: each rate and burst the operator did not give.
	p := app.ProductionRates()
	for _, b := range []struct {
		name      string
		cur, prod *ratelimit.Rate
	}{
		{"client", &c.RateLimit.Requests, &p.Requests},
		{"client-miss", &c.RateLimit.Misses, &p.Misses},
		{"client-subscription", &c.RateLimit.Subscriptions, &p.Subscriptions},
		{"client-connection", &c.RateLimit.Connections, &p.Connections},
	} {
		if !asked(b.name + "-rate") {
			b.cur.PerSecond = b.prod.PerSecond
		}
		if !asked(b.name + "-burst") {
			b.cur.Burst = b.prod.Burst
		}
	}
}

func rateLimitFlags(f *flags, c *app.RateLimitConfig) {
	for _, b := range []struct {
		name, env, what string
		r               *ratelimit.Rate
	}{
		{"client", "KCK_CLIENT", "requests to /graphql, /fetch and /update", &c.Requests},
		{"client-miss", "KCK_CLIENT_MISS", "primer runs (reads of values not cached)", &c.Misses},
		{"client-subscription", "KCK_CLIENT_SUBSCRIPTION", "subscriptions started", &c.Subscriptions},
		{"client-connection", "KCK_CLIENT_CONNECTION", "WebSocket connections opened", &c.Connections},
	} {
		f.float(&b.r.PerSecond, b.name+"-rate", b.env+"_RATE", 0, b.what+" per second per client (a token bucket; 429 RATE_LIMITED with Retry-After past it); 0: no limit; --production: see the README")
		f.int(&b.r.Burst, b.name+"-burst", b.env+"_BURST", 0, "burst of --"+b.name+"-rate (the bucket's size); 0: twice the rate, at least 1")
	}
	f.str(&c.Claim, "client-claim", "KCK_CLIENT_CLAIM", app.Defaults().RateLimit.Claim, "token claim that names a client for the rate limits (else its address)")
	c.TrustedProxies = envList("KCK_TRUSTED_PROXIES")
	f.value((*hostList)(&c.TrustedProxies), "trusted-proxies", "KCK_TRUSTED_PROXIES", "proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For names a request's client for the rate limits; empty: the peer's address")
}

func browserFlags(f *flags, c *app.BrowserConfig) {
	d := app.Defaults().Browser
	f.int(&c.MaxSubscriptions, "max-subscriptions", "KCK_MAX_SUBSCRIPTIONS", d.MaxSubscriptions, "most GraphQL subscriptions the gateway runs at once; -1: no limit")
	f.int(&c.MaxSubscriptionsPerConnection, "max-subscriptions-per-connection", "KCK_MAX_SUBSCRIPTIONS_PER_CONNECTION", d.MaxSubscriptionsPerConnection, "most subscriptions one WebSocket connection runs at once; -1: no limit")
	f.int(&c.MaxConnections, "max-websocket-connections", "KCK_MAX_WEBSOCKET_CONNECTIONS", d.MaxConnections, "most WebSocket (subscription) connections open at once; more are refused with 503; -1: no limit")
	f.dur(&c.KeepAlive, "ws-keepalive", "KCK_WS_KEEPALIVE", d.KeepAlive, "interval of the WebSocket keepalive (graphql-ws ka, graphql-transport-ws ping)")
	c.CORSOrigins = envList("KCK_CORS_ORIGINS")
	f.value((*hostList)(&c.CORSOrigins), "cors-origins", "KCK_CORS_ORIGINS", "origins allowed to call /graphql, /fetch and /update from a browser and to open subscriptions, comma-separated (https://app.example.com, http://localhost:5173, https://*.example.com, or * for any); empty: same origin only")
}
