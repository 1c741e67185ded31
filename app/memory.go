package app

import (
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
)

// MemoryBudget splits Config.MemoryMB between the caches, so that together
// they stay within it: the in-process tier of products takes most, the
// GraphQL response cache, the parsed-query cache, the APQ cache, the
// negative cache, the change bus's pending announcements and, with auth
// on, the verified tokens the rest.
type MemoryBudget struct {
	Tier, Responses, Queries, APQ, Negative, Bus, Tokens uint64
	// RateLimit is the per-client rate limiter's, when one is on (see
	// WithRateLimit).
	RateLimit uint64
}

// WithRateLimit gives the per-client rate limiter 1.6 % of the whole,
// taken from the in-process tier: about 20,000 clients' buckets a 256 MiB
// gateway, the most recently seen (see package ratelimit).
func (b MemoryBudget) WithRateLimit() MemoryBudget {
	total := b.Tier + b.Responses + b.Queries + b.APQ + b.Negative + b.Bus + b.Tokens + b.RateLimit
	if b.RateLimit == 0 {
		b.RateLimit = total / 64
		b.Tier -= b.RateLimit
	}
	return b
}

// SplitMemory is the budget of mb MiB.
func SplitMemory(mb int, auth bool) MemoryBudget {
	total := uint64(mb) << 20
	b := MemoryBudget{
		Responses: total / 8,  // 12.5 %
		Queries:   total / 16, // 6.25 %
		APQ:       total / 64, // 1.6 %
		Negative:  total / 64, // 1.6 %
		Bus:       total / 64, // 1.6 %: announcements received, not yet applied
	}
	if auth {
		b.Tokens = total / 32 // 3.1 %
	}
	b.Tier = total - b.Responses - b.Queries - b.APQ - b.Negative - b.Bus - b.Tokens
	return b
}

func (b MemoryBudget) cacheOptions(o *cache.Options) {
	o.MaxMemoryBytes = b.Tier
	o.NegativeCacheBytes = max(b.Negative, 1)
}

func (b MemoryBudget) gatewayOptions(o *gateway.Options, l LimitsConfig) {
	o.ResponseCacheBytes = int64(max(b.Responses, 1))
	o.QueryCacheBytes = max(b.Queries, 1)
	o.APQCacheBytes = max(b.APQ, 1)
	o.Limits = l.GraphQL
	o.MaxMissesPerRequest = l.MaxMisses
	o.DisablePlayground = !l.Playground
}

func (c BrowserConfig) gatewayOptions(o *gateway.Options) {
	o.Subscriptions.MaxTotal = c.MaxSubscriptions
	o.Subscriptions.MaxPerConnection = c.MaxSubscriptionsPerConnection
	o.Subscriptions.MaxConnections = c.MaxConnections
	o.Subscriptions.KeepAlive = c.KeepAlive
	o.CORSOrigins = c.CORSOrigins
}
