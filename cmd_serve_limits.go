package main

import (
	"errors"
	"flag"
	"net"
	"os"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/graph"
)

// limitsConfig is what one request may cost, and the production switch.
type limitsConfig struct {
	Production bool
	Playground bool
	// GraphQL holds the document limits: zero takes the default, negative
	// turns one off.
	GraphQL graph.Limits
	// MaxMisses bounds the primer runs one request may cause.
	MaxMisses int
	// NegativeTTL is how long a key without data stays "not found".
	NegativeTTL time.Duration
}

func limitFlags(fs *flag.FlagSet, c *limitsConfig) {
	fs.BoolVar(&c.Production, "production", envBool("KCK_PRODUCTION", false), "production defaults: introspection, the playground and the admin console off unless --introspection, --playground or --admin turn them on (KCK_PRODUCTION)")
	fs.BoolVar(&c.Playground, "playground", envBool("KCK_PLAYGROUND", true), "serve the GraphQL playground at / (KCK_PLAYGROUND)")
	l := &c.GraphQL
	fs.IntVar(&l.MaxTokens, "max-tokens", envInt("KCK_MAX_TOKENS", 15000), "most lexical tokens in a GraphQL document; -1: no limit (KCK_MAX_TOKENS)")
	fs.IntVar(&l.MaxDepth, "max-depth", envInt("KCK_MAX_DEPTH", 12), "deepest selection nesting, fragments expanded; -1: no limit (KCK_MAX_DEPTH)")
	fs.IntVar(&l.MaxAliases, "max-aliases", envInt("KCK_MAX_ALIASES", 30), "most aliased fields in a document; -1: no limit (KCK_MAX_ALIASES)")
	fs.IntVar(&l.MaxRootFields, "max-root-fields", envInt("KCK_MAX_ROOT_FIELDS", 50), "most top-level fields in an operation; -1: no limit (KCK_MAX_ROOT_FIELDS)")
	fs.IntVar(&l.MaxFields, "max-fields", envInt("KCK_MAX_FIELDS", 500), "most fields in a document, fragments expanded; -1: no limit (KCK_MAX_FIELDS)")
	fs.IntVar(&l.MaxRepeats, "max-repeated-fields", envInt("KCK_MAX_REPEATED_FIELDS", 20), "most times one response name occurs in one selection set; -1: no limit (KCK_MAX_REPEATED_FIELDS)")
	fs.IntVar(&l.MaxComplexity, "max-complexity", envInt("KCK_MAX_COMPLEXITY", 1000), "highest gqlgen complexity of an operation; -1: no limit (KCK_MAX_COMPLEXITY)")
	fs.IntVar(&l.MaxBatch, "max-batch", envInt("KCK_MAX_BATCH", 0), "accept batches (a JSON array) of at most this many GraphQL requests, each under every limit, sharing one request's miss budget and time; 0: batches refused (KCK_MAX_BATCH)")
	fs.IntVar(&l.ProductCost, "product-cost", envInt("KCK_PRODUCT_COST", 10), "complexity of a field that reads or writes a product (a plain field costs 1) (KCK_PRODUCT_COST)")
	fs.IntVar(&c.MaxMisses, "max-misses-per-request", envInt("KCK_MAX_MISSES_PER_REQUEST", 20), "most primer runs one request may cause; the keys beyond are served from the store or refused; -1: no limit (KCK_MAX_MISSES_PER_REQUEST)")
	fs.DurationVar(&c.NegativeTTL, "negative-ttl", envDuration("KCK_NEGATIVE_TTL", 5*time.Second), "how long a key whose primer found no data answers NOT_FOUND without running it again; 0 turns it off (KCK_NEGATIVE_TTL)")
}

// finishLimits applies --production: introspection and the playground are
// off unless a flag, a variable or the config file turned them on.
func finishLimits(fs *flag.FlagSet, c *serveConfig) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	asked := func(flagName, env string) bool {
		_, ok := os.LookupEnv(env)
		return set[flagName] || ok
	}
	if c.Limits.Production {
		if !asked("introspection", "KCK_INTROSPECTION") {
			c.Introspection = false
		}
		if !asked("playground", "KCK_PLAYGROUND") {
			c.Limits.Playground = false
		}
		if !asked("admin", "KCK_ADMIN") {
			c.Admin = false
		}
	}
	if c.Limits.NegativeTTL == 0 {
		c.Limits.NegativeTTL = -1 // 0s turns it off, as a negative value does
	}
	l := c.Limits.GraphQL
	for _, v := range []int{l.MaxTokens, l.MaxDepth, l.MaxAliases, l.MaxRootFields, l.MaxFields, l.MaxRepeats, l.MaxComplexity, c.Limits.MaxMisses} {
		if v == 0 {
			return errors.New("serve: a limit of 0 would refuse everything: give a positive value, or -1 for no limit")
		}
	}
	if l.ProductCost <= 0 {
		return errors.New("serve: --product-cost must be positive")
	}
	return nil
}

// memoryBudget splits --memory-mb between the caches, so that together
// they stay within it: the in-process tier of products takes most, the
// GraphQL response cache, the parsed-query cache, the APQ cache, the
// negative cache and, with auth on, the verified tokens the rest.
type memoryBudget struct {
	Tier, Responses, Queries, APQ, Negative, Tokens uint64
}

func splitMemory(mb int, auth bool) memoryBudget {
	total := uint64(mb) << 20
	b := memoryBudget{
		Responses: total / 8,  // 12.5 %
		Queries:   total / 16, // 6.25 %
		APQ:       total / 64, // 1.6 %
		Negative:  total / 64, // 1.6 %
	}
	if auth {
		b.Tokens = total / 32 // 3.1 %
	}
	b.Tier = total - b.Responses - b.Queries - b.APQ - b.Negative - b.Tokens
	return b
}

func (b memoryBudget) cacheOptions(o *cache.Options) {
	o.MaxMemoryBytes = b.Tier
	o.NegativeCacheBytes = max(b.Negative, 1)
}

func (b memoryBudget) gatewayOptions(o *gateway.Options, l limitsConfig) {
	o.ResponseCacheBytes = int64(max(b.Responses, 1))
	o.QueryCacheBytes = max(b.Queries, 1)
	o.APQCacheBytes = max(b.APQ, 1)
	o.Limits = l.GraphQL
	o.MaxMissesPerRequest = l.MaxMisses
	o.DisablePlayground = !l.Playground
}

func playgroundURL(cfg serveConfig, addr net.Addr) string {
	if !cfg.Limits.Playground {
		return "off"
	}
	return "http://" + displayAddr(addr) + "/"
}
