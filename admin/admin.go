// Package admin is the gateway's operator console: a page at /admin (its
// assets embedded, nothing loaded from outside) and the small JSON API under
// /admin/api/ it is drawn from, which scripts may use too.
//
// What it promises:
//   - Its figures come from the Prometheus registry /metrics serves (the
//     same counters, read when asked), from the refresh queue's Stats (what
//     `kck queue` prints) and from the other gateways' answers over the
//     change bus: nothing is counted twice or made up.
//   - Every action (refresh, invalidate, warm, queue retry or remove) is
//     logged with who asked; an action that would touch more than one key
//     is refused unless the request confirms the exact number of keys it
//     was shown (so a page or a script never acts on more than it saw).
//   - Access is the caller's business: the gateway mounts the handler behind
//     its operator gate (scope kck:admin with auth on; with auth off only
//     when enabled, and Options.Open makes the page say it is open).
package admin

import (
	"context"
	"errors"
	"fmt"
	"github.com/kck-go/kck/apierror"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/lifecycle"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// Options configure a Console.
type Options struct {
	// Cache is the gateway's cache. Required.
	Cache *cache.Cache
	// Gatherer is the registry /metrics serves. Required: the console's
	// figures are read from it.
	Gatherer prometheus.Gatherer
	// Queue is the refresh queue; nil: the page shows none.
	Queue queue.Store
	// Plans returns the scheduler's plan of each product (refresh, warming,
	// domain); nil: none shown.
	Plans func() map[string]scheduler.Plan
	// Warm warms the keys the product declares (boot warming's keys and
	// domain members); nil: the warm action is refused.
	Warm func(ctx context.Context, product string) (scheduler.WarmReport, error)
	// Declared returns a product's source tables and refresh rules; nil:
	// those of its declaration (primers.Product's Sources, AfterPrimes and
	// AfterUpdates), which SQL products' headers fill in too.
	Declared func(product string) Declared
	// Open says the console is served with auth off: the page says so.
	Open bool
	// Addr is this gateway's listen address, shown in the cluster view.
	Addr string
	// Version names this build; default the module's build info.
	Version string
	// HeartbeatInterval is how often this gateway samples its counters for
	// its charts and hit rate. Default 5 s; negative: never.
	HeartbeatInterval time.Duration
	// Roster reaches the other gateways for the cluster view; nil: this
	// gateway only.
	Roster Roster
	// MaxKeys bounds the keys one action may touch (a prefix or a product
	// with more is refused). Default 10,000.
	MaxKeys int
	// Logger receives the action log. Default: discards.
	Logger *slog.Logger
	// Clock defaults to the wall clock.
	Clock cache.Clock
}

// Declared is what a product declares of its sources and refresh rules.
type Declared struct {
	// Sources are the tables it is computed from ("titles author_id=author_id").
	Sources []string
	// AfterPrimes are the key templates whose computation refreshes it;
	// AfterUpdates the updaters after which it is refreshed.
	AfterPrimes, AfterUpdates []string
}

// declared is what p declares of its sources and refresh rules.
func (a *Console) declared(p *primers.Product) Declared {
	if a.opts.Declared != nil {
		return a.opts.Declared(p.Name)
	}
	d := Declared{AfterPrimes: p.AfterPrimes, AfterUpdates: p.AfterUpdates}
	for _, s := range p.Sources {
		src := s.Table
		if s.All {
			src += " *"
		} else if len(s.Columns) > 0 {
			src += " " + strings.Join(s.Columns, " ")
		}
		d.Sources = append(d.Sources, src)
	}
	return d
}

func (o Options) withDefaults() Options {
	if o.Version == "" {
		o.Version = buildVersion()
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 5 * time.Second
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = cache.SystemClock{}
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Cache == nil {
		errs = append(errs, errors.New("option Cache is required"))
	}
	if o.Gatherer == nil {
		errs = append(errs, errors.New("option Gatherer is required"))
	}
	if o.MaxKeys < 0 {
		errs = append(errs, errors.New("MaxKeys must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("admin options: %w", err)
	}
	return nil
}

// Console serves /admin and /admin/api/. Create it with New; Start begins
// the heartbeat, Close ends it.
type Console struct {
	opts    Options
	c       *cache.Cache
	log     *slog.Logger
	mux     *http.ServeMux
	started time.Time
	beat    *heartbeat
	hist    history

	life *lifecycle.Group // sampling
}

// New returns a console; it writes no heartbeat before Start.
func New(o Options) (*Console, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	a := &Console{opts: o, c: o.Cache, log: o.Logger, mux: http.NewServeMux(), started: o.Clock.Now(), life: lifecycle.New()}
	a.beat = newHeartbeat(a)
	a.routes()
	return a, nil
}

// Start answers the roster's questions and samples this gateway's
// counters now and then every HeartbeatInterval, until Close.
func (a *Console) Start() error {
	if a.opts.Roster != nil {
		if err := a.opts.Roster.Answer(rosterTopic, a.beat.answer); err != nil {
			return fmt.Errorf("admin: roster: %w", err)
		}
	}
	if a.opts.HeartbeatInterval < 0 {
		return nil
	}
	a.life.Go(func(ctx context.Context) {
		a.beat.sample()
		t := time.NewTicker(a.opts.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.beat.sample()
			}
		}
	})
	return nil
}

// Close stops sampling.
func (a *Console) Close() error {
	a.life.Close()
	return nil
}

// ServeHTTP serves the page and the API.
func (a *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *Console) routes() {
	a.mux.Handle("GET /admin", pageHandler(a.opts.Open))
	a.mux.Handle("GET /admin/{$}", http.RedirectHandler("/admin", http.StatusMovedPermanently))
	a.mux.Handle("GET /admin/assets/{file}", assetHandler())
	a.mux.HandleFunc("GET /admin/api/{$}", a.handleIndex)
	a.mux.HandleFunc("GET /admin/api/overview", a.handleOverview)
	a.mux.HandleFunc("GET /admin/api/products", a.handleProducts)
	a.mux.HandleFunc("GET /admin/api/queue", a.handleQueue)
	a.mux.HandleFunc("GET /admin/api/cluster", a.handleCluster)
	a.mux.HandleFunc("GET /admin/api/graph", a.handleGraph)
	a.mux.HandleFunc("GET /admin/api/history", a.handleHistory)
	a.mux.HandleFunc("GET /admin/api/key", a.handleKey)
	a.mux.HandleFunc("POST /admin/api/refresh", a.action(a.refresh))
	a.mux.HandleFunc("POST /admin/api/invalidate", a.action(a.invalidate))
	a.mux.HandleFunc("POST /admin/api/warm", a.action(a.warm))
	a.mux.HandleFunc("POST /admin/api/queue/retry", a.action(a.queueRetry))
	a.mux.HandleFunc("POST /admin/api/queue/remove", a.action(a.queueRemove))
	a.mux.HandleFunc("/admin/api/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, apierror.NotFound, "no such admin API route (GET /admin/api/ lists them)")
	})
}

func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
