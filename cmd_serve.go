package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/scheduler"
)

// serveConfig is the gateway's configuration: flags over KCK_* environment
// variables over defaults.
type serveConfig struct {
	Addr          string
	DataDir       string
	MemoryMB      int
	LogFormat     string
	LogLevel      string
	Introspection bool
	ShutdownAfter time.Duration
	Store         string
	Cassandra     cassandra.Config
	Migrate       bool
	// ReplicationFactor of a keyspace --migrate creates.
	ReplicationFactor int
	// PostgresURL, when set, serves SQL products from that database.
	PostgresURL string
	// SQLDir holds the SQL product declarations; empty: the demo's.
	SQLDir string
	// Scheduler runs periodic refresh, warming, domains and the refresh
	// queue's worker; ReadyAfterWarm keeps /readyz failing until warming is
	// done; DrainInterval is how often the worker looks at the queue.
	Scheduler      bool
	ReadyAfterWarm bool
	DrainInterval  time.Duration
	// WarmConcurrency is how many keys boot warming reads at once.
	WarmConcurrency int
	// QueueLease is how long a worker holds the keys it claimed, and
	// ComputeLease how long a gateway holds one key's computation: a gateway
	// that dies mid-refresh delays its keys by the longer of the two.
	QueueLease, ComputeLease time.Duration
	// Limits: what one request may cost (cmd_serve_limits.go).
	Limits limitsConfig
	// Browser: subscriptions and CORS (cmd_serve_browser.go).
	Browser browserConfig
	// Auth verifies bearer tokens and enforces the products' policies;
	// off unless a key is given (auth_flags.go).
	Auth authConfig
	// Admin serves the operator console at /admin (admin_wiring.go).
	Admin bool
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(envOr(name, "")); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(envOr(name, "")); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(envOr(name, "")); err == nil {
		return v
	}
	return def
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", envOr("KCK_HTTP_ADDR", ":8080"), "listen address (KCK_HTTP_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", envOr("KCK_DATA_DIR", ".kck-data"), "directory of the embedded store (KCK_DATA_DIR)")
	fs.IntVar(&c.MemoryMB, "memory-mb", envInt("KCK_MEMORY_MB", 256), "MiB for every cache together: the in-process tier, the response, parsed-query, APQ and negative caches, and with auth on the verified tokens (KCK_MEMORY_MB)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("KCK_LOG_FORMAT", "text"), "log format: text or json (KCK_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("KCK_LOG_LEVEL", "info"), "log level: debug, info, warn, error (KCK_LOG_LEVEL)")
	fs.BoolVar(&c.Introspection, "introspection", envBool("KCK_INTROSPECTION", true), "allow GraphQL introspection (KCK_INTROSPECTION)")
	fs.DurationVar(&c.ShutdownAfter, "shutdown-timeout", 15*time.Second, "how long in-flight requests get at shutdown")
	fs.StringVar(&c.Store, "store", envOr("KCK_STORE", "embedded"), "store: embedded or cassandra (KCK_STORE)")
	c.Cassandra = cassandra.ConfigFromEnv()
	cassandraFlags(fs, &c.Cassandra)
	fs.StringVar(&c.PostgresURL, "postgres-url", envOr("KCK_POSTGRES_URL", ""), "serve SQL products from this PostgreSQL database (KCK_POSTGRES_URL)")
	fs.StringVar(&c.SQLDir, "sql-dir", envOr("KCK_SQL_DIR", ""), "folder of SQL product declarations; default: the demo's (KCK_SQL_DIR)")
	fs.BoolVar(&c.Scheduler, "scheduler", envBool("KCK_SCHEDULER", true), "run periodic refresh, boot warming, domains and the refresh-queue worker (KCK_SCHEDULER)")
	fs.BoolVar(&c.ReadyAfterWarm, "ready-after-warm", envBool("KCK_READY_AFTER_WARM", true), "report /readyz only once boot warming is done (KCK_READY_AFTER_WARM)")
	fs.IntVar(&c.WarmConcurrency, "warm-concurrency", envInt("KCK_WARM_CONCURRENCY", 32), "how many keys boot warming reads (or computes) at once (KCK_WARM_CONCURRENCY)")
	fs.DurationVar(&c.DrainInterval, "drain-interval", envDuration("KCK_DRAIN_INTERVAL", time.Second), "how often the worker claims from the refresh queue (KCK_DRAIN_INTERVAL)")
	fs.DurationVar(&c.QueueLease, "queue-lease", envDuration("KCK_QUEUE_LEASE", 2*time.Minute), "how long a worker holds the keys it claimed from the refresh queue (KCK_QUEUE_LEASE)")
	fs.DurationVar(&c.ComputeLease, "compute-lease", envDuration("KCK_COMPUTE_LEASE", 30*time.Second), "how long a gateway holds one key's computation against the others; keep it above the longest primer run (KCK_COMPUTE_LEASE)")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", envInt("KCK_CASSANDRA_REPLICATION_FACTOR", 1), "with --migrate: replication factor of a new keyspace (KCK_CASSANDRA_REPLICATION_FACTOR)")
	fs.BoolVar(&c.Migrate, "migrate", envBool("KCK_MIGRATE", false), "with --store cassandra: create the keyspace and tables first (KCK_MIGRATE)")
	limitFlags(fs, &c.Limits)
	browserFlags(fs, &c.Browser)
	authFlags(fs, &c.Auth)
	fs.BoolVar(&c.Admin, "admin", envBool("KCK_ADMIN", true), "serve the operator console at /admin: with auth on it needs scope kck:admin, with auth off it is open to anyone who reaches the gateway; --production turns it off unless asked for (KCK_ADMIN)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck serve [flags]\n\nStarts the gateway with the demo data products on the embedded store.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected arguments %v", fs.Args())
	}
	if c.Store != "embedded" && c.Store != "cassandra" {
		return c, fmt.Errorf("serve: --store must be embedded or cassandra, not %q", c.Store)
	}
	if c.Store == "cassandra" && len(c.Cassandra.Hosts) == 0 {
		return c, errors.New("serve: --store cassandra needs --cassandra-hosts or KCK_CASSANDRA_HOSTS")
	}
	if c.DrainInterval <= 0 || c.QueueLease <= 0 || c.ComputeLease <= 0 {
		return c, errors.New("serve: --drain-interval, --queue-lease and --compute-lease must be positive")
	}
	if err := c.Auth.validate(); err != nil {
		return c, err
	}
	if c.MemoryMB <= 0 {
		return c, errors.New("serve: --memory-mb must be positive")
	}
	if c.WarmConcurrency <= 0 {
		return c, errors.New("serve: --warm-concurrency must be positive")
	}
	if err := c.Browser.validate(); err != nil {
		return c, err
	}
	if err := finishLimits(fs, &c); err != nil {
		return c, err
	}
	return c, nil
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

func runServe(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.As(err, new(saidError)) {
			fmt.Fprintln(stderr, "kck:", err)
		}
		return 2
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "kck:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log, nil); err != nil {
		log.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the gateway until ctx is done, then shuts down gracefully. When
// ready is not nil it receives the bound address once the server listens.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, ready chan<- string) error {
	if cfg.Store == "cassandra" && cfg.Migrate {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := cassandra.Migrate(mctx, cfg.Cassandra, cassandra.Replication{Factor: cfg.ReplicationFactor})
		cancel()
		if err != nil {
			return err
		}
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()

	prods, err := loadProducts(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer prods.close()
	reg := prods.reg

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mem := splitMemory(cfg.MemoryMB, cfg.Auth.enabled())
	copts := cache.Options{
		Registry:    reg,
		Store:       store,
		LeaseTTL:    cfg.ComputeLease,
		Logger:      log,
		Registerer:  promReg,
		OnStored:    prods.onStored,
		NegativeTTL: cfg.Limits.NegativeTTL,
	}
	mem.cacheOptions(&copts)
	c, err := cache.New(copts)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := prods.start(ctx, c, cfg, log, promReg); err != nil {
		return err
	}
	var sched *scheduler.Scheduler
	if cfg.Scheduler {
		sched, err = startScheduler(c, prods, cfg, log, promReg)
		if err != nil {
			return err
		}
		defer sched.Close()
		if cfg.ReadyAfterWarm {
			prods.readyChecks["warming"] = func(context.Context) error {
				if !sched.Ready() {
					done, total := sched.WarmProgress()
					return fmt.Errorf("%w (%d of %d keys)", scheduler.ErrWarming, done, total)
				}
				return nil
			}
		}
	}

	verifier, err := cfg.Auth.verifier(ctx, log, mem.Tokens)
	if err != nil {
		return err
	}
	if verifier != nil {
		defer verifier.Close()
	}
	gopts := gateway.Options{
		Auth:                 verifier,
		Cache:                c,
		Logger:               log,
		Registerer:           promReg,
		Gatherer:             promReg,
		DisableIntrospection: !cfg.Introspection,
		ReadyChecks:          prods.readyChecks,
	}
	mem.gatewayOptions(&gopts, cfg.Limits)
	cfg.Browser.gatewayOptions(&gopts)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if cfg.Admin {
		console, err := newConsole(c, sched, prods, promReg, verifier == nil, displayAddr(ln.Addr()), log)
		if err != nil {
			return err
		}
		console.Start()
		defer console.Close()
		gopts.Admin = console
	}
	gw, err := gateway.New(gopts)
	if err != nil {
		return err
	}
	srv := gateway.NewHTTPServer(cfg.Addr, gw)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "store", cfg.Store, "data_dir", cfg.DataDir,
		"products", len(reg.Products()), "playground", playgroundURL(cfg, ln.Addr()), "admin", adminURL(cfg, ln.Addr()))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownAfter.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownAfter)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

func displayAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return "localhost:" + strconv.Itoa(t.Port)
	}
	return a.String()
}
