package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/ratelimit"
	"github.com/kck-go/kck/tracing"
	"github.com/kck-go/kck/trusted"
)

// Config is a gateway's configuration. Start from Defaults: a zero Config
// is not valid (its limits of 0 would refuse everything). `kck serve` fills
// it from its flags, the KCK_* variables and the config file; each field
// names its flag.
type Config struct {
	// Addr is the listen address (--addr, ":8080").
	Addr string
	// DataDir holds the embedded store and the Go demo's added titles
	// (--data-dir, ".kck-data").
	DataDir string
	// MemoryMB is the budget of every cache together (--memory-mb, 256):
	// see SplitMemory.
	MemoryMB int
	// Introspection allows GraphQL introspection (--introspection, true).
	Introspection bool
	// Compression serves the responses kept in the response cache in zstd
	// or gzip, as Accept-Encoding prefers, compressed once per response
	// version (--compression, true). CompressMinBytes is the smallest body
	// compressed (--compress-min-bytes, 512; negative: every size).
	Compression      bool
	CompressMinBytes int
	// DrainDelay is how long a gateway told to stop keeps serving, with
	// /readyz answering 503, before it closes its listener, so that load
	// balancers stop sending it requests first (--drain-delay, 5s: about
	// what Kubernetes' endpoint updates take to reach kube-proxy and
	// ingress controllers, and two failed probes of a load balancer
	// polling every 2 s). ShutdownAfter is how long the requests in flight
	// then get (--shutdown-timeout, 15s). See App.Serve.
	DrainDelay    time.Duration
	ShutdownAfter time.Duration
	// Store is "embedded", "cassandra" or "postgres" (--store,
	// "embedded"); Cassandra is the cluster's connection (--cassandra-*),
	// needed with "cassandra"; StorePostgres the database and schema of the
	// PostgreSQL store (--store-postgres-*), whose URL defaults to
	// PostgresURL.
	Store         string
	Cassandra     cassandra.Config
	StorePostgres postgres.Config
	// Bus is the cluster's change bus, which gateways sharing a store need.
	Bus BusConfig
	// Migrate creates the keyspace or schema and its tables first, with a
	// new keyspace's ReplicationFactor (--migrate, false;
	// --replication-factor, 1), and installs the SQL products' change
	// triggers.
	Migrate           bool
	ReplicationFactor int
	// PostgresURL, when set, serves SQL products from that database
	// (--postgres-url).
	PostgresURL string
	// SQLDir holds the SQL product declarations (--sql-dir); SQL, when not
	// nil, holds them instead (an application's embedded files). With
	// neither, and no Register, the demo's are served.
	SQLDir string
	SQL    fs.FS
	// SQLWatch is how often SQLDir is checked for added, changed or
	// removed .sql files, which are then reloaded while the gateway runs
	// (--sql-watch, 2s; 0: only on SIGHUP). See App.ReloadSQL.
	SQLWatch time.Duration
	// Register adds the application's own Go products to the registry,
	// beside its SQL products; db is the PostgresURL database (nil without
	// one). Nil: the Go demo's products when there is no database.
	Register func(reg *primers.Registry, db *pgxpool.Pool) error
	// Schema builds the GraphQL schema over KCK's resolver: an
	// application's own gqlgen package (see examples/own-module). Nil:
	// KCK's schema.graphqls.
	Schema func(*graph.Resolver) graphql.ExecutableSchema
	// Scheduler runs periodic refresh, warming, domains and the refresh
	// queue's worker (--scheduler, true); ReadyAfterWarm keeps /readyz
	// failing until warming is done (--ready-after-warm, true);
	// DrainInterval is how often the worker claims from the queue
	// (--drain-interval, 1s).
	Scheduler      bool
	ReadyAfterWarm bool
	DrainInterval  time.Duration
	// WarmConcurrency is how many keys boot warming reads at once
	// (--warm-concurrency, 32).
	WarmConcurrency int
	// RefreshConcurrency is how many keys a periodic or bulk refresh
	// recomputes at once (--refresh-concurrency, 16).
	RefreshConcurrency int
	// QueueLease is how long a worker holds the keys it claimed
	// (--queue-lease, 2m), and ComputeLease how long a gateway holds one
	// key's computation (--compute-lease, 30s): a gateway that dies
	// mid-refresh delays its keys by the longer of the two. ComputeLease
	// must be at least PrimerTimeout, the bound of one primer run
	// (--primer-timeout, 30s): a lease that ends before the run lets a
	// second gateway compute the same key.
	QueueLease, ComputeLease time.Duration
	PrimerTimeout            time.Duration
	// Limits: what one request may cost.
	Limits LimitsConfig
	// Browser: subscriptions and CORS.
	Browser BrowserConfig
	// RateLimit: per-client budgets over time; off unless a rate is given
	// (--production gives them all).
	RateLimit RateLimitConfig
	// Trusted: the trusted documents, off unless a manifest is given.
	Trusted TrustedConfig
	// Auth verifies bearer tokens and enforces the products' policies;
	// off unless a key is given.
	Auth AuthConfig
	// Admin serves the operator console at /admin (--admin, true).
	Admin bool
	// Tracing exports OpenTelemetry traces over OTLP: off unless an
	// endpoint is given (--otel-endpoint, or OTEL_EXPORTER_OTLP_ENDPOINT
	// and the other OTEL_* variables; see tracing.Config).
	Tracing tracing.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// BusConfig is the cluster's change bus: the NATS servers every gateway
// sharing the store connects to (see docs/scaling.md).
type BusConfig struct {
	// URL lists the NATS servers (--bus-url, KCK_BUS_URL), comma-separated.
	// A shared store (Cassandra) needs one; the embedded store, one
	// gateway's, ignores it.
	URL string
	// Cluster names the gateways sharing a store on the bus (--cluster,
	// KCK_CLUSTER); default: the store's keyspace.
	Cluster string
	// InlineBytes is the largest value announced with its change
	// (--bus-inline-bytes, 65536; -1: versions only).
	InlineBytes int
	// CredsFile, TLSCAFile, TLSCertFile and TLSKeyFile authenticate to the
	// servers (--bus-creds, --bus-tls-ca, --bus-tls-cert, --bus-tls-key).
	CredsFile, TLSCAFile, TLSCertFile, TLSKeyFile string
	// FollowLease is the lease of the one gateway that follows the source
	// tables' changes: when it dies, another follows within about 4/3 of
	// it (--follow-lease, 10s).
	FollowLease time.Duration
}

// LimitsConfig is what one request may cost.
type LimitsConfig struct {
	// Playground serves the GraphQL playground at / (--playground, true).
	Playground bool
	// GraphQL holds the document limits (--max-tokens and the like):
	// negative turns one off; 0 is refused.
	GraphQL gqlhttp.Limits
	// MaxMisses bounds the primer runs one request may cause
	// (--max-misses-per-request, 20; -1: no bound).
	MaxMisses int
	// NegativeTTL is how long a key without data stays "not found"
	// (--negative-ttl, 5s; 0 or negative: off).
	NegativeTTL time.Duration
}

// BrowserConfig is what front-end clients meet: subscriptions over
// WebSocket and CORS.
type BrowserConfig struct {
	// MaxSubscriptions, MaxSubscriptionsPerConnection and MaxConnections
	// bound subscriptions (--max-subscriptions 10000,
	// --max-subscriptions-per-connection 100, --max-websocket-connections
	// 10000; -1: no limit, 0 refused).
	MaxSubscriptions, MaxSubscriptionsPerConnection, MaxConnections int
	// KeepAlive is the WebSocket keepalive interval (--ws-keepalive, 15s).
	KeepAlive time.Duration
	// CORSOrigins are the origins allowed to call the gateway from a
	// browser (and to open its WebSocket); empty: same origin only.
	CORSOrigins []string
}

// RateLimitConfig is what each client may ask over time (package
// ratelimit): a token bucket per client for requests (--client-rate,
// --client-burst), primer runs its reads cause (--client-miss-rate,
// --client-miss-burst), subscriptions started (--client-subscription-rate,
// --client-subscription-burst) and WebSocket connections opened
// (--client-connection-rate, --client-connection-burst). A rate of 0 turns
// its budget off. A client is its token's Claim (--client-claim, sub),
// else its address, read from X-Forwarded-For only behind TrustedProxies
// (--trusted-proxies, CIDRs).
type RateLimitConfig struct {
	Requests, Misses, Subscriptions, Connections ratelimit.Rate
	Claim                                        string
	TrustedProxies                               []string
}

// On reports whether any budget is limited.
func (c RateLimitConfig) On() bool {
	return c.Requests.PerSecond > 0 || c.Misses.PerSecond > 0 || c.Subscriptions.PerSecond > 0 || c.Connections.PerSecond > 0
}

// ProductionRates are the budgets --production gives a client unless
// flags say otherwise: generous for an app's own traffic (a page that
// loads issues a few requests, each of a few misses at most), tight for a
// script that floods.
func ProductionRates() RateLimitConfig {
	return RateLimitConfig{
		Requests:      ratelimit.Rate{PerSecond: 50, Burst: 100},
		Misses:        ratelimit.Rate{PerSecond: 10, Burst: 50},
		Subscriptions: ratelimit.Rate{PerSecond: 2, Burst: 20},
		Connections:   ratelimit.Rate{PerSecond: 1, Burst: 10},
		Claim:         "sub",
	}
}

func (c RateLimitConfig) limiter(maxBytes uint64) (*ratelimit.Limiter, error) {
	for _, r := range []ratelimit.Rate{c.Requests, c.Misses, c.Subscriptions, c.Connections} {
		if r.PerSecond < 0 || r.Burst < 0 {
			return nil, errors.New("serve: --client-*-rate and --client-*-burst must not be negative (0 turns a budget off)")
		}
	}
	if !c.On() {
		return nil, nil
	}
	var proxies []netip.Prefix
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("serve: --trusted-proxies: %q is neither a CIDR nor an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		proxies = append(proxies, p.Masked())
	}
	l, err := ratelimit.New(ratelimit.Config{
		Requests: c.Requests, Misses: c.Misses, Subscriptions: c.Subscriptions, Connections: c.Connections,
		Claim: c.Claim, TrustedProxies: proxies, MaxBytes: maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("serve: --client-*: %w", err)
	}
	return l, nil
}

// TrustedConfig is the gateway's trusted documents (package trusted): the
// manifest (--trusted-documents FILE: Apollo's persisted query manifest or
// GraphQL Code Generator's persisted documents), its mode
// (--trusted-documents-mode off, log or enforce; "" is enforce with a
// manifest, off without) and whether kck:admin may run other documents in
// enforce mode (--trusted-documents-admin-adhoc).
type TrustedConfig struct {
	Path       string
	Mode       string
	AdminAdHoc bool
}

func (c TrustedConfig) mode() (trusted.Mode, error) {
	if c.Mode == "" && c.Path != "" {
		return trusted.Enforce, nil
	}
	m, err := trusted.ParseMode(c.Mode)
	if err != nil {
		return m, fmt.Errorf("serve: --trusted-documents-mode: %w", err)
	}
	if m != trusted.Off && c.Path == "" {
		return m, fmt.Errorf("serve: --trusted-documents-mode %s needs --trusted-documents FILE", m)
	}
	return m, nil
}

// AuthConfig is the gateway's token verification: off unless a key is
// given (an HS256 secret, PEM public key files or a JWKS URL).
type AuthConfig struct {
	Secret      string
	PublicKeys  []string
	JWKSURL     string
	JWKSRefresh time.Duration
	Issuer      string
	Audience    []string
	Leeway      time.Duration
	ScopeClaims []string
}

// Enabled reports whether a key was given.
func (c AuthConfig) Enabled() bool {
	return c.Secret != "" || len(c.PublicKeys) > 0 || c.JWKSURL != ""
}

// Defaults is the configuration `kck serve` starts from.
func Defaults() Config {
	return Config{
		Addr:               ":8080",
		DataDir:            ".kck-data",
		MemoryMB:           256,
		Introspection:      true,
		Compression:        true,
		CompressMinBytes:   512,
		DrainDelay:         5 * time.Second,
		ShutdownAfter:      15 * time.Second,
		Store:              "embedded",
		StorePostgres:      postgres.Config{Schema: "kck", MaxValueBytes: 16 << 20},
		Bus:                BusConfig{InlineBytes: 64 << 10, FollowLease: 10 * time.Second},
		ReplicationFactor:  1,
		SQLWatch:           2 * time.Second,
		Scheduler:          true,
		ReadyAfterWarm:     true,
		DrainInterval:      time.Second,
		WarmConcurrency:    32,
		RefreshConcurrency: 16,
		QueueLease:         2 * time.Minute,
		ComputeLease:       30 * time.Second,
		PrimerTimeout:      30 * time.Second,
		Limits: LimitsConfig{
			Playground: true,
			GraphQL: gqlhttp.Limits{
				MaxTokens: 15000, MaxDepth: 12, MaxAliases: 30, MaxRootFields: 50, MaxFields: 500,
				MaxRepeats: 20, MaxComplexity: 1000, ProductCost: 10,
			},
			MaxMisses:   20,
			NegativeTTL: 5 * time.Second,
		},
		Browser: BrowserConfig{
			MaxSubscriptions: 10000, MaxSubscriptionsPerConnection: 100, MaxConnections: 10000,
			KeepAlive: 15 * time.Second,
		},
		Auth:      AuthConfig{JWKSRefresh: 15 * time.Minute, Leeway: 30 * time.Second, ScopeClaims: []string{"scope", "scp"}},
		RateLimit: RateLimitConfig{Claim: "sub"},
		Admin:     true,
		Tracing:   tracing.Config{SampleRatio: -1},
	}
}

// Validate reports the first setting no gateway can run with, naming its
// flag.
func (c Config) Validate() error {
	if err := c.backend(nil).Check(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if c.Store == "cassandra" && c.Bus.URL == "" {
		return errors.New("serve: --store cassandra is shared by every gateway on the keyspace, which keep coherent over a change bus: set --bus-url (KCK_BUS_URL) to the NATS servers (scripts/nats/ensure.sh starts one and prints its URL)")
	}
	if c.Bus.FollowLease < 300*time.Millisecond {
		return errors.New("serve: --follow-lease must be at least 300ms")
	}
	if c.DrainInterval <= 0 || c.QueueLease <= 0 || c.ComputeLease <= 0 {
		return errors.New("serve: --drain-interval, --queue-lease and --compute-lease must be positive")
	}
	if c.DrainDelay < 0 || c.ShutdownAfter < 0 {
		return errors.New("serve: --drain-delay and --shutdown-timeout must not be negative")
	}
	if c.PrimerTimeout < 0 {
		return errors.New("serve: --primer-timeout must not be negative")
	}
	if c.SQLWatch < 0 {
		return errors.New("serve: --sql-watch must not be negative (0: reload on SIGHUP only)")
	}
	if pt := c.primerTimeout(); c.ComputeLease < pt {
		return fmt.Errorf("serve: --compute-lease %v is shorter than --primer-timeout %v: another gateway would compute a key while its primer still runs", c.ComputeLease, pt)
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if c.MemoryMB <= 0 {
		return errors.New("serve: --memory-mb must be positive")
	}
	if c.WarmConcurrency <= 0 {
		return errors.New("serve: --warm-concurrency must be positive")
	}
	if c.RefreshConcurrency <= 0 {
		return errors.New("serve: --refresh-concurrency must be positive")
	}
	if err := c.Browser.validate(); err != nil {
		return err
	}
	if _, err := c.RateLimit.limiter(4 << 20); err != nil {
		return err
	}
	if _, err := c.Trusted.mode(); err != nil {
		return err
	}
	if err := c.Tracing.Check(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return c.Limits.validate()
}

// backend is the store's configuration: the PostgreSQL store's database
// defaults to the source database.
func (c Config) backend(log *slog.Logger) backend.Config {
	pg := c.StorePostgres
	if pg.URL == "" {
		pg.URL = c.PostgresURL
	}
	return backend.Config{Kind: c.Store, DataDir: c.DataDir, Cassandra: c.Cassandra, Postgres: pg, Late: true,
		Migrate: c.Migrate, Replication: cassandra.Replication{Factor: c.ReplicationFactor}, Logger: log}
}

// primerTimeout is the primer timeout the cache runs with (its default
// when none is given).
func (c Config) primerTimeout() time.Duration {
	return cache.Options{PrimerTimeout: c.PrimerTimeout}.WithDefaults().PrimerTimeout
}

func (c AuthConfig) validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.Secret != "" && len(c.Secret) < auth.MinSecretBytes {
		return fmt.Errorf("serve: --auth-jwt-secret is %d bytes; at least %d are needed", len(c.Secret), auth.MinSecretBytes)
	}
	if c.Leeway < 0 || c.Leeway > auth.MaxLeeway {
		return fmt.Errorf("serve: --auth-leeway must be between 0 and %v", auth.MaxLeeway)
	}
	if c.JWKSRefresh <= 0 {
		return errors.New("serve: --auth-jwks-refresh must be positive")
	}
	return nil
}

func (c BrowserConfig) validate() error {
	if c.MaxSubscriptions == 0 || c.MaxSubscriptionsPerConnection == 0 || c.MaxConnections == 0 {
		return errors.New("serve: a subscription limit of 0 would refuse every subscription: give a positive value, or -1 for no limit")
	}
	if c.KeepAlive <= 0 {
		return errors.New("serve: --ws-keepalive must be positive")
	}
	return nil
}

func (c LimitsConfig) validate() error {
	l := c.GraphQL
	for _, v := range []int{l.MaxTokens, l.MaxDepth, l.MaxAliases, l.MaxRootFields, l.MaxFields, l.MaxRepeats, l.MaxComplexity, c.MaxMisses} {
		if v == 0 {
			return errors.New("serve: a limit of 0 would refuse everything: give a positive value, or -1 for no limit")
		}
	}
	if l.ProductCost <= 0 {
		return errors.New("serve: --product-cost must be positive")
	}
	return nil
}
