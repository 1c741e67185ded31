package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"syscall"

	"github.com/kck-go/kck/app"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/ratelimit"
)

// serveOptions are kck serve's flags: the gateway's app.Config, and what
// only the command line has.
type serveOptions struct {
	app.Config
	LogFormat, LogLevel string
	production          bool
	// envErr is a KCK_* variable no flag could take.
	envErr error
}

func serveFlags(f *flags) *serveOptions {
	o := &serveOptions{Config: app.Defaults()}
	c, d := &o.Config, app.Defaults()
	f.str(&c.Addr, "addr", "KCK_HTTP_ADDR", d.Addr, "listen address")
	f.str(&c.DataDir, "data-dir", "KCK_DATA_DIR", d.DataDir, "directory of the embedded store")
	f.int(&c.MemoryMB, "memory-mb", "KCK_MEMORY_MB", d.MemoryMB, "MiB for every cache together: the in-process tier, the response, parsed-query, APQ and negative caches, and with auth on the verified tokens")
	f.str(&o.LogFormat, "log-format", "KCK_LOG_FORMAT", "text", "log format: text or json")
	f.str(&o.LogLevel, "log-level", "KCK_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.bool(&c.Introspection, "introspection", "KCK_INTROSPECTION", d.Introspection, "allow GraphQL introspection")
	f.bool(&c.Compression, "compression", "KCK_COMPRESSION", d.Compression, "serve GraphQL responses kept in the response cache in zstd or gzip, as Accept-Encoding prefers; compressed once per response version")
	f.int(&c.CompressMinBytes, "compress-min-bytes", "KCK_COMPRESS_MIN_BYTES", d.CompressMinBytes, "smallest response body served compressed; -1: every size")
	f.dur(&c.DrainDelay, "drain-delay", "KCK_DRAIN_DELAY", d.DrainDelay, "on SIGTERM: how long the gateway keeps serving, /readyz answering 503, before it closes its listener (load balancers stop sending meanwhile); SIGINT or a second signal skips it")
	f.dur(&c.ShutdownAfter, "shutdown-timeout", "KCK_SHUTDOWN_TIMEOUT", d.ShutdownAfter, "then, how long the requests in flight (and scheduled refreshes under way) get to finish")
	f.str(&c.Store, "store", "KCK_STORE", d.Store, "store: embedded, cassandra or postgres")
	cassandraFlags(f, &c.Cassandra)
	busFlags(f, &c.Bus)
	storePostgresFlags(f, &c.StorePostgres)
	postgresFlag(f, &c.PostgresURL, "serve SQL products from this PostgreSQL database (and hold the postgres store's schema, unless --store-postgres-url)")
	sqlDirFlag(f, &c.SQLDir)
	f.dur(&c.SQLWatch, "sql-watch", "KCK_SQL_WATCH", d.SQLWatch, "how often --sql-dir is checked for added, changed or removed .sql files, which are then validated against the database and served without a restart (SIGHUP reloads too); 0: only on SIGHUP")
	f.bool(&c.Scheduler, "scheduler", "KCK_SCHEDULER", d.Scheduler, "run periodic refresh, boot warming, domains and the refresh-queue worker")
	f.bool(&c.ReadyAfterWarm, "ready-after-warm", "KCK_READY_AFTER_WARM", d.ReadyAfterWarm, "report /readyz only once boot warming is done")
	f.int(&c.WarmConcurrency, "warm-concurrency", "KCK_WARM_CONCURRENCY", d.WarmConcurrency, "how many keys boot warming reads (or computes) at once")
	f.int(&c.RefreshConcurrency, "refresh-concurrency", "KCK_REFRESH_CONCURRENCY", d.RefreshConcurrency, "how many keys a periodic or bulk refresh recomputes at once")
	f.dur(&c.DrainInterval, "drain-interval", "KCK_DRAIN_INTERVAL", d.DrainInterval, "how often the worker claims from the refresh queue")
	f.dur(&c.QueueLease, "queue-lease", "KCK_QUEUE_LEASE", d.QueueLease, "how long a worker holds the keys it claimed from the refresh queue")
	f.dur(&c.ComputeLease, "compute-lease", "KCK_COMPUTE_LEASE", d.ComputeLease, "how long a gateway holds one key's computation against the others; at least --primer-timeout")
	f.dur(&c.PrimerTimeout, "primer-timeout", "KCK_PRIMER_TIMEOUT", d.PrimerTimeout, "longest one primer run may take before it is cancelled; at most --compute-lease")
	f.int(&c.ReplicationFactor, "replication-factor", "KCK_CASSANDRA_REPLICATION_FACTOR", d.ReplicationFactor, "with --migrate: replication factor of a new keyspace")
	f.bool(&c.Migrate, "migrate", "KCK_MIGRATE", d.Migrate, "create the keyspace (--store cassandra) or schema and its tables (--store postgres) first, and the SQL products' change triggers (with --postgres-url), as kck migrate does; also when a reload of --sql-dir names new source tables")
	limitFlags(f, &c.Limits, &o.production)
	browserFlags(f, &c.Browser)
	rateLimitFlags(f, &c.RateLimit)
	f.str(&c.Trusted.Path, "trusted-documents", "KCK_TRUSTED_DOCUMENTS", "", "manifest of the trusted documents (Apollo's persisted query manifest or GraphQL Code Generator's persisted documents JSON), validated against the schema at start, reloaded when it changes or on SIGHUP")
	f.str(&c.Trusted.Mode, "trusted-documents-mode", "KCK_TRUSTED_DOCUMENTS_MODE", "", "off, log (other documents run, counted and logged once each) or enforce (only trusted documents run: others are refused with PERSISTED_QUERY_NOT_ALLOWED); default: enforce with --trusted-documents, off without")
	f.bool(&c.Trusted.AdminAdHoc, "trusted-documents-admin-adhoc", "KCK_TRUSTED_DOCUMENTS_ADMIN_ADHOC", false, "in enforce mode, let callers with scope kck:admin run documents that are not trusted")
	authFlags(f, &c.Auth)
	f.bool(&c.Admin, "admin", "KCK_ADMIN", d.Admin, "serve the operator console at /admin: with auth on it needs scope kck:admin, with auth off it is open to anyone who reaches the gateway; --production turns it off unless asked for")
	o.envErr = tracingFlags(f, &c.Tracing)
	return o
}

// cassandraFlags adds the Cassandra connection flags over the values read
// from the environment.
func cassandraFlags(f *flags, c *cassandra.Config) {
	*c = cassandra.Config{Hosts: envList("KCK_CASSANDRA_HOSTS")}
	f.value((*hostList)(&c.Hosts), "cassandra-hosts", "KCK_CASSANDRA_HOSTS", "Cassandra contact points, comma-separated")
	d := cassandra.Config{}.WithDefaults()
	f.str(&c.Keyspace, "cassandra-keyspace", "KCK_CASSANDRA_KEYSPACE", d.Keyspace, "keyspace")
	f.str(&c.Consistency, "cassandra-consistency", "KCK_CASSANDRA_CONSISTENCY", d.Consistency, "consistency of reads and writes")
	f.str(&c.LocalDC, "cassandra-local-dc", "KCK_CASSANDRA_LOCAL_DC", "", "local datacenter: route requests there")
	f.str(&c.AddressMap, "cassandra-address-map", "KCK_CASSANDRA_ADDRESS_MAP", "", "dial nodes at other addresses than they announce (NAT, proxy): announced=dialled pairs of IP:port, comma-separated")
	f.str(&c.Username, "cassandra-username", "KCK_CASSANDRA_USERNAME", "", "user for Cassandra's PasswordAuthenticator")
	f.str(&c.Password, "cassandra-password", "KCK_CASSANDRA_PASSWORD", "", "its password (prefer the variable or the config file: a flag shows in the process list)")
	f.str(&c.TLSCAFile, "cassandra-tls-ca", "KCK_CASSANDRA_TLS_CA", "", "CA file to verify the nodes (turns TLS on)")
	f.str(&c.TLSCertFile, "cassandra-tls-cert", "KCK_CASSANDRA_TLS_CERT", "", "client certificate for the nodes")
	f.str(&c.TLSKeyFile, "cassandra-tls-key", "KCK_CASSANDRA_TLS_KEY", "", "client key for the nodes")
	f.bool(&c.TLSInsecureSkipVerify, "cassandra-tls-insecure", "KCK_CASSANDRA_TLS_INSECURE", false, "TLS without verifying the nodes' certificates (tests only)")
}

// busFlags add the change bus's flags.
func busFlags(f *flags, b *app.BusConfig) {
	d := app.Defaults().Bus
	f.str(&b.URL, "bus-url", "KCK_BUS_URL", "", "NATS servers of the cluster's change bus, comma-separated (nats://host:4222); needed with a shared store")
	f.str(&b.Cluster, "cluster", "KCK_CLUSTER", "", "name of the gateways sharing a store on the bus; default: the store's keyspace (Cassandra) or database and schema (PostgreSQL)")
	f.int(&b.InlineBytes, "bus-inline-bytes", "KCK_BUS_INLINE_BYTES", d.InlineBytes, "largest value announced on the bus with its change (other gateways then need not read the store); -1: versions only")
	f.str(&b.CredsFile, "bus-creds", "KCK_BUS_CREDS", "", "NATS credentials file")
	f.str(&b.TLSCAFile, "bus-tls-ca", "KCK_BUS_TLS_CA", "", "CA file to verify the NATS servers")
	f.str(&b.TLSCertFile, "bus-tls-cert", "KCK_BUS_TLS_CERT", "", "client certificate for the NATS servers")
	f.str(&b.TLSKeyFile, "bus-tls-key", "KCK_BUS_TLS_KEY", "", "client key for the NATS servers")
	f.dur(&b.FollowLease, "follow-lease", "KCK_FOLLOW_LEASE", d.FollowLease, "lease of the one gateway that follows the source tables; another takes over within about 4/3 of it")
}

// storePostgresFlags add the PostgreSQL store's flags.
func storePostgresFlags(f *flags, c *postgres.Config) {
	d := app.Defaults().StorePostgres
	f.str(&c.URL, "store-postgres-url", "KCK_STORE_POSTGRES_URL", "", "with --store postgres: the store's database; default --postgres-url's")
	f.str(&c.Schema, "store-postgres-schema", "KCK_STORE_POSTGRES_SCHEMA", d.Schema, "with --store postgres: the schema of the store's tables")
	f.int(&c.MaxValueBytes, "store-postgres-max-value-bytes", "KCK_STORE_POSTGRES_MAX_VALUE_BYTES", d.MaxValueBytes, "with --store postgres: a product value larger than this (its JSON) is not stored (an error is logged; the gateway still serves it from memory)")
}

// postgresFlag and sqlDirFlag are the database and the SQL products of
// every command that has them; usage says what the command does with it.
func postgresFlag(f *flags, p *string, usage string) {
	f.str(p, "postgres-url", "KCK_POSTGRES_URL", "", usage)
}

func sqlDirFlag(f *flags, p *string) {
	f.str(p, "sql-dir", "KCK_SQL_DIR", "", "folder of SQL product declarations; default: the demo's")
}

func parseServe(args []string, stderr io.Writer) (serveOptions, error) {
	return parseServeWith(args, stderr, nil)
}

// parseServeWith parses kck serve's flags, then applies with.
func parseServeWith(args []string, stderr io.Writer, with func(*app.Config)) (serveOptions, error) {
	f := newFlags("serve", stderr)
	o := serveFlags(f)
	f.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck serve [flags]\n\nStarts the gateway with the demo data products on the embedded store.\n\nFlags:")
		f.PrintDefaults()
	}
	if err := f.parse(args); err != nil {
		return *o, err
	}
	if f.NArg() > 0 {
		return *o, fmt.Errorf("serve: unexpected arguments %v", f.Args())
	}
	if o.envErr != nil && f.Lookup("trace-sample-ratio") != nil && !flagSet(f, "trace-sample-ratio") {
		return *o, fmt.Errorf("serve: %w", o.envErr)
	}
	if o.production {
		productionDefaults(f, &o.Config)
	}
	for _, r := range []*ratelimit.Rate{&o.RateLimit.Requests, &o.RateLimit.Misses, &o.RateLimit.Subscriptions, &o.RateLimit.Connections} {
		if r.PerSecond > 0 && r.Burst == 0 {
			r.Burst = max(1, int(math.Ceil(2*r.PerSecond)))
		}
	}
	if with != nil {
		with(&o.Config)
	}
	return *o, o.Validate()
}

// flagSet reports whether name was given on the command line.
func flagSet(f *flags, name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad log level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad log format %q (text or json)", format)
}

func runServe(args []string, stdout, stderr io.Writer) int { return Serve(args, stdout, stderr, nil) }

// Serve is `kck serve` for a program of its own (see examples/own-module):
// the same flags, KCK_* variables and config file, then with sets what
// only code can (app.Config's Register, Schema and SQL) before the
// configuration is validated and the gateway runs until SIGINT or SIGTERM.
// It returns the exit code: 0 stopped cleanly, 1 failed, 2 usage error.
func Serve(args []string, stdout, stderr io.Writer, with func(*app.Config)) int {
	o, err := parseServeWith(args, stderr, with)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.As(err, new(saidError)) {
			fmt.Fprintln(stderr, "kck:", err)
		}
		return 2
	}
	log, err := newLogger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "kck:", err)
		return 2
	}
	ctx, skip, stop := stopSignals()
	defer stop()
	o.Logger = log
	if err := runGateway(ctx, skip, o.Config); err != nil {
		log.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// runGateway is app.Run, with the drain delay skipped when skip is closed.
func runGateway(ctx context.Context, skip <-chan struct{}, cfg app.Config) error {
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-skip:
			a.SkipDrainDelay()
		case <-served:
		}
	}()
	return a.Serve(ctx)
}

// stopSignals ends ctx at the first SIGTERM or SIGINT: the gateway drains
// (see app.App.Serve). SIGTERM is what orchestrators send, and the drain
// delay is served; SIGINT (Ctrl-C at a terminal) or a second signal
// closes skip too: the delay is skipped, the requests in flight still
// finish.
func stopSignals() (ctx context.Context, skip <-chan struct{}, stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	skipc := make(chan struct{})
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case sig := <-sigs:
				if sig == os.Interrupt || n > 1 {
					select {
					case <-skipc:
					default:
						close(skipc)
					}
				}
				cancel()
			case <-done:
				return
			}
		}
	}()
	return ctx, skipc, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
