// Package app is a KCK gateway as a library: Open wires the store, the
// cache, the products, the source follower, the scheduler and the HTTP
// gateway from a Config, and Serve serves until its context ends. `kck
// serve` is this package behind flags; a team's own module (see
// examples/own-module) is this package with its own products and schema.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
	"github.com/kck-go/kck/trusted"
)

// App is an open gateway: listening, not yet serving.
type App struct {
	cfg     Config
	log     *slog.Logger
	backend backend.Backend
	prods   *Products
	cache   *cache.Cache
	sched   *scheduler.Scheduler
	ln      net.Listener
	srv     *http.Server
	closers []func() // in the order to run them
}

// Open validates cfg and opens everything a gateway runs, in order: the
// keyspace (with Migrate), the store, the products, the cache, the source
// follower, the scheduler (boot warming starts in the background), the
// token verifier, the listener, the console and the gateway. On error
// what was opened is closed again.
func Open(ctx context.Context, cfg Config) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log}
	// The error returns below return a nil App: close what was opened.
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.backend, err = backend.Open(ctx, backend.Config{Kind: cfg.Store, DataDir: cfg.DataDir, Cassandra: cfg.Cassandra, Late: true,
		Migrate: cfg.Migrate, Replication: cassandra.Replication{Factor: cfg.ReplicationFactor}, Logger: log})
	if err != nil {
		return nil, err
	}
	a.closeLater(func() { _ = a.backend.Close() })
	a.prods, err = LoadProducts(ctx, cfg.products(), log)
	if err != nil {
		return nil, err
	}
	a.closeLater(a.prods.Close)

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mem := SplitMemory(cfg.MemoryMB, cfg.Auth.Enabled())
	if cfg.RateLimit.On() {
		mem = mem.WithRateLimit()
	}
	negativeTTL := cfg.Limits.NegativeTTL
	if negativeTTL == 0 {
		negativeTTL = -1 // 0 turns it off, as a negative value does
	}
	copts := cache.Options{
		Registry:      a.prods.reg,
		Store:         a.backend.Store(),
		LeaseTTL:      cfg.ComputeLease,
		PrimerTimeout: cfg.PrimerTimeout,
		Logger:        log,
		Registerer:    promReg,
		OnStored:      a.prods.onStored,
		NegativeTTL:   negativeTTL,
	}
	mem.cacheOptions(&copts)
	if a.cache, err = cache.New(copts); err != nil {
		return nil, err
	}
	a.closeLater(func() { _ = a.cache.Close() })
	if err := a.prods.follow(ctx, a.cache, cfg.PostgresURL, log, promReg); err != nil {
		return nil, err
	}
	if cfg.Scheduler {
		if err := a.startScheduler(promReg); err != nil {
			return nil, err
		}
	}
	verifier, err := cfg.Auth.verifier(ctx, log, mem.Tokens)
	if err != nil {
		return nil, err
	}
	if verifier != nil {
		a.closeLater(verifier.Close)
	}
	gopts := gateway.Options{
		Auth:                 verifier,
		Cache:                a.cache,
		Logger:               log,
		Registerer:           promReg,
		Gatherer:             promReg,
		DisableIntrospection: !cfg.Introspection,
		DisableCompression:   !cfg.Compression,
		CompressMinBytes:     cfg.CompressMinBytes,
		ReadyChecks:          a.prods.readyChecks,
		Schema:               cfg.Schema,
	}
	mem.gatewayOptions(&gopts, cfg.Limits)
	if gopts.RateLimit, err = cfg.RateLimit.limiter(max(mem.RateLimit, 64<<10)); err != nil {
		return nil, err
	}
	if gopts.Trusted, err = a.openTrusted(cfg.Trusted, log, promReg); err != nil {
		return nil, err
	}
	cfg.Browser.gatewayOptions(&gopts)
	if a.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, err
	}
	a.closeLater(func() { _ = a.ln.Close() })
	if cfg.Admin {
		console, err := newConsole(a.cache, a.sched, a.prods, promReg, verifier == nil, displayAddr(a.ln.Addr()), log)
		if err != nil {
			return nil, err
		}
		console.Start()
		a.closeLater(func() { _ = console.Close() })
		gopts.Admin = console
	}
	gw, err := gateway.New(gopts)
	if err != nil {
		return nil, err
	}
	a.srv = gateway.NewHTTPServer(cfg.Addr, gw)
	return a, nil
}

// openTrusted opens the trusted documents manifest, polls it for changes
// and reloads it on SIGHUP, until Close; nil when the mode is off.
func (a *App) openTrusted(c TrustedConfig, log *slog.Logger, reg prometheus.Registerer) (*trusted.Store, error) {
	mode, err := c.mode()
	if err != nil || mode == trusted.Off {
		return nil, err
	}
	st, err := trusted.Open(trusted.Options{Path: c.Path, Mode: mode, AdminAdHoc: c.AdminAdHoc, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	st.Start()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				_ = st.Reload() // logged and counted; the manifest in force stays
			case <-done:
				return
			}
		}
	}()
	a.closeLater(func() {
		signal.Stop(hup)
		close(done)
		st.Stop()
	})
	log.Info("trusted documents", "path", c.Path, "mode", mode.String(), "documents", st.Current().Len(), "admin_adhoc", c.AdminAdHoc)
	return st, nil
}

// closeLater runs f at Close, before what was opened earlier.
func (a *App) closeLater(f func()) { a.closers = append([]func(){f}, a.closers...) }

// startScheduler starts the gateway's scheduled work: the products'
// refresh, warming and domains, and a worker draining the shared refresh
// queue. Warming runs in the background; /readyz waits for it with
// ReadyAfterWarm.
func (a *App) startScheduler(reg prometheus.Registerer) error {
	q, err := a.backend.Queue(queue.Config{})
	if err != nil {
		return err
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: a.cache, LeaseTTL: a.cfg.QueueLease, Logger: a.log, Registerer: reg})
	if err != nil {
		return err
	}
	s, err := scheduler.New(scheduler.Options{
		Cache:           a.cache,
		Queue:           q,
		Worker:          w,
		DrainInterval:   a.cfg.DrainInterval,
		WarmConcurrency: a.cfg.WarmConcurrency,
		Concurrency:     a.cfg.RefreshConcurrency,
		Logger:          a.log,
		Registerer:      reg,
	})
	if err != nil {
		return err
	}
	a.closeLater(func() { _ = s.Close() })
	if err := s.Start(); err != nil {
		return err
	}
	a.sched = s
	if a.cfg.ReadyAfterWarm {
		a.prods.readyChecks["warming"] = func(context.Context) error {
			if !s.Ready() {
				done, total := s.WarmProgress()
				return fmt.Errorf("%w (%d of %d keys)", scheduler.ErrWarming, done, total)
			}
			return nil
		}
	}
	return nil
}

// Addr is the address the gateway listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Cache is the gateway's cache.
func (a *App) Cache() *cache.Cache { return a.cache }

// Registry is the products the gateway serves.
func (a *App) Registry() *primers.Registry { return a.prods.reg }

// Serve serves HTTP until ctx ends, then shuts down gracefully, giving
// in-flight requests ShutdownAfter. It does not Close.
func (a *App) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	a.log.Info("gateway listening", "addr", a.ln.Addr().String(), "store", a.cfg.Store, "data_dir", a.cfg.DataDir,
		"products", len(a.prods.reg.Products()), "playground", a.url(a.cfg.Limits.Playground, "/"), "admin", a.url(a.cfg.Admin, "/admin"))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownAfter.String())
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownAfter)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.log.Info("stopped cleanly")
	return nil
}

// Close releases everything Open opened, the last opened first.
func (a *App) Close() {
	for _, f := range a.closers {
		f()
	}
	a.closers = nil
}

// Run opens the gateway, serves until ctx ends and closes it.
func Run(ctx context.Context, cfg Config) error {
	a, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx)
}

func (a *App) url(on bool, path string) string {
	if !on {
		return "off"
	}
	return "http://" + displayAddr(a.ln.Addr()) + path
}

func displayAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return "localhost:" + strconv.Itoa(t.Port)
	}
	return a.String()
}
