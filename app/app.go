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
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/backend"
	natsbus "github.com/kck-go/kck/cache/nats"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
	"github.com/kck-go/kck/tracing"
	"github.com/kck-go/kck/trusted"
)

// App is an open gateway: listening, not yet serving.
type App struct {
	cfg     Config
	log     *slog.Logger
	backend backend.Backend
	bus     *natsbus.Bus // nil without --bus-url (the admin roster needs it)
	prods   *Products
	cache   *cache.Cache
	sched   *scheduler.Scheduler
	ln      net.Listener
	gw      *gateway.Server
	srv     *http.Server
	closers []func() // in the order to run them

	// skip ends the drain delay early (SkipDrainDelay).
	skip     chan struct{}
	skipOnce sync.Once
	// reloadMu serialises reloads of --sql-dir; sqlReloads counts them.
	reloadMu   sync.Mutex
	sqlReloads *prometheus.CounterVec
	// flushers run once in-flight requests are done, before anything
	// closes, within what is left of the shutdown timeout: the place for
	// exporters that must send what they hold (the tracer provider).
	flushers []func(context.Context) error
	// tracing is nil when tracing is off.
	tracing *tracing.Tracing
}

// Open validates cfg and opens everything a gateway runs, in order: the
// tracer provider (when cfg.Tracing turns it on), the keyspace (with
// Migrate), the store, the products, the cache, the source follower, the
// scheduler (boot warming starts in the background), the token verifier,
// the listener, the console and the gateway. On error what was opened is
// closed again.
func Open(ctx context.Context, cfg Config) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, skip: make(chan struct{})}
	// The error returns below return a nil App: close what was opened.
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Tracing first: everything opened after it traces.
	if err := a.openTracing(ctx, promReg); err != nil {
		return nil, err
	}
	log = a.log
	bcfg := cfg.backend(log)
	bcfg.Cassandra.Trace, bcfg.Postgres.Trace = a.traced(), a.traced()
	a.backend, err = backend.Open(ctx, bcfg)
	if err != nil {
		return nil, err
	}
	a.closeLater(func() { _ = a.backend.Close() })
	pcfg := cfg.products()
	pcfg.Trace = a.traced()
	a.prods, err = LoadProducts(ctx, pcfg, log)
	if err != nil {
		return nil, err
	}
	a.closeLater(a.prods.Close)

	mem := SplitMemory(cfg.MemoryMB, cfg.Auth.Enabled())
	if cfg.RateLimit.On() {
		mem = mem.WithRateLimit()
	}
	negativeTTL := cfg.Limits.NegativeTTL
	if negativeTTL == 0 {
		negativeTTL = -1 // 0 turns it off, as a negative value does
	}
	owner := cache.NewOwner()
	registerStoreOps(promReg, a.backend.Store())
	bus, err := a.openBus(owner, mem, promReg)
	if err != nil {
		return nil, err
	}
	if bus == nil { // a lone gateway: the bus's share goes to the tier
		mem.Tier, mem.Bus = mem.Tier+mem.Bus, 0
	}
	copts := cache.Options{
		Registry:       a.prods.reg,
		Store:          a.backend.Store(),
		Owner:          owner,
		Bus:            bus,
		BusInlineBytes: cfg.Bus.InlineBytes,
		LeaseTTL:       cfg.ComputeLease,
		PrimerTimeout:  cfg.PrimerTimeout,
		Logger:         log,
		Registerer:     promReg,
		OnStored:       a.prods.onStored,
		NegativeTTL:    negativeTTL,
		TracerProvider: a.tracing.TracerProvider(),
	}
	mem.cacheOptions(&copts)
	if a.cache, err = cache.New(copts); err != nil {
		return nil, err
	}
	a.closeLater(func() { _ = a.cache.Close() })
	a.prods.cache.Store(a.cache)
	stopFollowing, err := a.prods.follow(a.cache, a.backend, a.clusterName(), cfg, log, promReg, a.tracing.TracerProvider())
	if err != nil {
		return nil, err
	}
	a.closeLater(stopFollowing)
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
		// KCK's own schema declares the demo's products: a gateway of
		// other products leaves those fields out.
		Extend:         a.prods.extend(cfg.Schema == nil),
		TracerProvider: a.tracing.TracerProvider(),
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
		var roster admin.Roster
		if a.bus != nil {
			roster = a.bus
		}
		console, err := newConsole(a.cache, a.sched, a.prods, roster, promReg, verifier == nil, displayAddr(a.ln.Addr()), log)
		if err != nil {
			return nil, err
		}
		if err := console.Start(); err != nil {
			return nil, err
		}
		a.closeLater(func() { _ = console.Close() })
		gopts.Admin = console
	}
	if a.gw, err = gateway.New(gopts); err != nil {
		return nil, err
	}
	if a.sqlReloads, err = newSQLReloads(promReg); err != nil {
		return nil, err
	}
	if a.prods.sqlDir != "" && a.prods.pool != nil {
		a.closeLater(a.watchSQL(cfg.SQLWatch))
	}
	a.srv = gateway.NewHTTPServer(cfg.Addr, a.gw)
	return a, nil
}

// openTracing starts the tracer provider when the configuration asks for
// one: from then on the gateway's log lines carry the trace of the
// request (or refresh) that logs them. Its spans are sent at the drain
// (a flusher), or at Close when the gateway never served.
func (a *App) openTracing(ctx context.Context, reg prometheus.Registerer) error {
	t, err := tracing.Open(ctx, a.cfg.Tracing, tracing.Options{Logger: a.log, Registerer: reg})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if t == nil {
		return nil
	}
	a.tracing = t
	a.log = slog.New(tracing.LogHandler(a.log.Handler()))
	a.flushers = append(a.flushers, t.Shutdown)
	a.closeLater(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(ctx); err != nil {
			a.log.Warn("tracing: spans not sent at close", "err", err)
		}
	})
	return nil
}

// traced reports whether tracing is on.
func (a *App) traced() bool { return a.tracing != nil }

// clusterName names the gateways sharing the store: on the bus, and as
// their position in the source tables' change log.
func (a *App) clusterName() string {
	if a.cfg.Bus.Cluster != "" {
		return a.cfg.Bus.Cluster
	}
	return a.backend.Name()
}

// openBus connects to the cluster's change bus, when one is configured.
// It is closed after the cache (closers run last opened first).
func (a *App) openBus(owner string, mem MemoryBudget, reg prometheus.Registerer) (cache.Bus, error) {
	c := a.cfg.Bus
	if !a.backend.Shared() {
		return nil, nil
	}
	if c.URL == "" {
		// A store that carries a bus of its own (PostgreSQL's
		// LISTEN/NOTIFY) serves a few gateways without NATS.
		if ob, ok := a.backend.(interface{ OpenBus(*slog.Logger) cache.Bus }); ok {
			b := ob.OpenBus(a.log)
			if c, ok := b.(interface{ Close() error }); ok {
				a.closeLater(func() { _ = c.Close() })
			}
			return b, nil
		}
		return nil, nil
	}
	b, err := natsbus.Open(natsbus.Config{URL: c.URL, Cluster: a.clusterName(), Name: owner, PendingBytes: int(max(mem.Bus, 1<<20)),
		CredsFile: c.CredsFile, TLSCAFile: c.TLSCAFile, TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile,
		Logger: a.log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("serve: --bus-url: %w", err)
	}
	a.closeLater(func() { _ = b.Close() })
	a.bus = b
	return b, nil
}

// registerStoreOps exports the store's operation counts, when it counts
// them, as kck_store_operations_total{kind}.
func registerStoreOps(reg prometheus.Registerer, s cache.Store) {
	oc, ok := s.(cache.OpCounter)
	if !ok {
		return
	}
	for _, k := range []struct {
		kind string
		get  func(cache.StoreOps) uint64
	}{
		{"read", func(o cache.StoreOps) uint64 { return o.Reads }},
		{"write", func(o cache.StoreOps) uint64 { return o.Writes }},
		{"lwt", func(o cache.StoreOps) uint64 { return o.LWTs }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "kck_store_operations_total",
			Help:        "Requests this gateway sent to the store, by kind: read, write, lwt (a lightweight transaction or locking statement: leases, queue claims).",
			ConstLabels: prometheus.Labels{"kind": k.kind},
		}, func() float64 { return float64(k.get(oc.Ops())) }))
	}
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
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: a.cache, LeaseTTL: a.cfg.QueueLease, Logger: a.log, Registerer: reg,
		TracerProvider: a.tracing.TracerProvider()})
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
		TracerProvider:  a.tracing.TracerProvider(),
	})
	if err != nil {
		return err
	}
	a.closeLater(func() { _ = s.Close() })
	if sw, ok := a.backend.(backend.Sweeper); ok {
		// One gateway of the cluster per slot deletes what ran out.
		if err := s.Process("store/sweep", primers.Every(sw.SweepInterval()), sw.Sweep); err != nil {
			return err
		}
	}
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

// Serve serves HTTP until ctx ends, then drains: it returns once the
// gateway has stopped serving (see drain), nil when every request in
// flight was answered. It does not Close.
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
	return a.drain(errc)
}

// SkipDrainDelay ends the drain delay now, or skips it if the drain has
// not begun: what a second signal, or Ctrl-C at a terminal, asks for.
func (a *App) SkipDrainDelay() { a.skipOnce.Do(func() { close(a.skip) }) }

// drain stops the gateway without failing a request that reached it, in
// this order:
//
//  1. /readyz answers 503 (and responses say Connection: close), the
//     scheduler starts no more work (its runs under way go on), while
//     requests are served for DrainDelay, so that load balancers stop
//     sending here;
//  2. the listener closes (connections are refused from then on), the
//     requests in flight get ShutdownAfter to finish, and the WebSockets
//     are closed with 1001 (going away): clients reconnect elsewhere and
//     resume with sinceVersion;
//  3. the scheduler's runs under way get what is left of ShutdownAfter;
//     then the flushers run (traces).
//
// Close then cancels what still runs (a refresh cancelled gives its
// compute lease back) and closes the store. errc is the HTTP server's.
func (a *App) drain(errc <-chan error) error {
	start := time.Now()
	a.gw.Drain()
	schedDone := make(chan error, 1)
	// The scheduler's deadline is the whole drain's: its runs under way
	// carry on beside the requests.
	schedCtx, cancelSched := context.WithTimeout(context.Background(), a.cfg.DrainDelay+a.cfg.ShutdownAfter)
	defer cancelSched()
	if a.sched != nil {
		go func() { schedDone <- a.sched.Stop(schedCtx) }()
	} else {
		schedDone <- nil
	}
	a.log.Info("draining: /readyz answers 503, requests are still served", "drain_delay", a.cfg.DrainDelay.String(), "shutdown_timeout", a.cfg.ShutdownAfter.String())
	delay := time.NewTimer(a.cfg.DrainDelay)
	select {
	case <-delay.C:
	case <-a.skip:
		delay.Stop()
		a.log.Info("drain delay skipped")
	}

	a.log.Info("closing the listener: finishing the requests in flight, closing WebSockets with 1001")
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownAfter)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- a.srv.Shutdown(sctx) }() // closes the listener at once
	ws, wsErr := a.gw.CloseWebSockets(sctx)
	err := <-shut
	if err != nil {
		// Past the shutdown timeout: what is still in flight is cut.
		_ = a.srv.Close()
		err = fmt.Errorf("shutdown: requests still in flight after --shutdown-timeout %v: %w", a.cfg.ShutdownAfter, err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if wsErr != nil {
		a.log.Warn("WebSockets still open after --shutdown-timeout; closed when the gateway closes", "closed", ws, "err", wsErr)
	}
	if serr := <-schedDone; serr != nil {
		a.log.Warn("scheduled refreshes still running after the drain; cancelled (their leases are given back)", "err", serr)
	}
	for _, f := range a.flushers {
		if ferr := f(sctx); ferr != nil {
			a.log.Warn("flushing at shutdown", "err", ferr)
		}
	}
	if err != nil {
		return err
	}
	a.log.Info("stopped cleanly", "took", time.Since(start).Round(time.Millisecond).String(), "websockets_closed", ws)
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
