// Package scheduler runs KCK's periodic work on gocron v2: product refreshes
// at an interval or on a cron expression, warming at boot, named processes
// (KCK's process worker), domains kept primed, and the refresh-queue drain.
//
// What it promises:
//   - A process (Process, Domain) runs once per scheduled slot for the whole
//     cluster, on whichever gateway takes the slot's lease in the shared
//     store first (see SlotLocker), not once per gateway.
//   - Per-gateway work runs on every gateway: draining the refresh queue
//     (claims share it out) and refreshing a product's keys that this
//     gateway holds (requests are stamped with when the slot opens, half a
//     period before its instant, so a key that another gateway already
//     refreshed in this slot is skipped, see queue.StoredAfter, or shared
//     while its run is under way, see cache.RefreshAskedAt).
//   - Warming runs once at Start; Ready reports when it has finished, so
//     that /readyz can wait for it.
//   - A run never overlaps the previous run of the same job in a gateway.
//
// Register everything, then Start; Stop lets the runs under way finish and
// starts no more (a gateway draining), Close cancels them and waits.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/lifecycle"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/tracing"
)

// Options configure a Scheduler.
type Options struct {
	// Cache serves and refreshes the products; its store holds the
	// cluster-wide job leases. Required.
	Cache *cache.Cache
	// Queue, when set, receives the refreshes that jobs ask for (to be
	// drained by the workers of every gateway); without it, jobs refresh
	// directly.
	Queue queue.Store
	// Worker, when set, drains the queue on this gateway every DrainInterval.
	Worker *queue.Worker
	// DrainInterval defaults to 1 s.
	DrainInterval time.Duration
	// Owner names this gateway in job leases. Default Cache.Owner().
	Owner string
	// Clock computes job slots. Default the wall clock; gocron's tickers
	// always use the wall clock.
	Clock cache.Clock
	// Location is the time zone of cron expressions without CRON_TZ=.
	// Default UTC, so that every gateway reads them alike.
	Location *time.Location
	// Concurrency bounds the refreshes a job runs at once. Default 16: a
	// refresh on a shared store waits on several round trips (the key's
	// lease, the store's read and write, the change, the release), so a
	// bulk refresh is bound by latency; the primers' own pools (a SQL
	// product's pgx pool) bound what reaches the sources.
	Concurrency int
	// WarmConcurrency bounds the keys boot warming reads at once. Default
	// 32: on a shared store each key that misses waits on a few round trips
	// (its lease, the store's read and write), so warming is bound by
	// latency, not by this gateway's CPU.
	WarmConcurrency int
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// Registerer receives the scheduler's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// TracerProvider, when set, makes each run of a job a trace (kck.job;
	// not the queue's drain, whose refreshes are traces of their own), and
	// each refresh a job asks for a trace of its own linked to it: through
	// the queue (Item.Trace), or directly without one. Nil: no tracing.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns o with defaults filled in.
func (o Options) WithDefaults() Options {
	if o.Owner == "" && o.Cache != nil {
		o.Owner = o.Cache.Owner()
	}
	if o.DrainInterval == 0 {
		o.DrainInterval = time.Second
	}
	if o.Clock == nil {
		o.Clock = cache.SystemClock{}
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.WarmConcurrency == 0 {
		o.WarmConcurrency = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Cache == nil {
		errs = append(errs, errors.New("option Cache is required"))
	}
	if o.Worker != nil && o.Queue == nil {
		errs = append(errs, errors.New("a Worker needs the Queue it drains"))
	}
	if o.DrainInterval < 0 || o.Concurrency < 0 || o.WarmConcurrency < 0 {
		errs = append(errs, errors.New("durations and counts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scheduler options: %w", err)
	}
	return nil
}

// Scheduler runs the jobs. Create it with New, register jobs, Start, Close.
type Scheduler struct {
	opts   Options
	tracer trace.Tracer // nil: no tracing
	cache  *cache.Cache
	gs     gocron.Scheduler
	locker *SlotLocker
	m      *metrics
	fails  *failLog

	mu      sync.Mutex
	started bool
	jobs    []jobSpec
	names   map[string]bool
	// warming holds the declarations of the products that warm or
	// refresh, domains those that keep a domain primed.
	warming []*primers.Product
	domains []*primers.Product
	warmed  map[string][]string // product -> keys warmed at Start

	ready     chan struct{}
	readyOnce sync.Once
	// warmDone and warmTotal are boot warming's progress, for Progress.
	warmDone, warmTotal atomic.Int64

	// life owns warming and Stop's stopping of the jobs: cancelled by Stop
	// and Close, waited for by Close.
	life *lifecycle.Group

	// runCtx is every job run's context, cancelled by Close. Not gocron's:
	// gocron cancels the runs under way as it stops, and Stop lets them
	// finish.
	runCtx    context.Context
	runCancel context.CancelFunc
	// runMu guards running, the job runs under way, and idle, closed when
	// none is left once stopping.
	runMu    sync.Mutex
	running  int
	stopping bool
	idle     chan struct{}
}

// jobSpec is a job waiting for Start.
type jobSpec struct {
	name     string
	when     primers.Schedule
	schedule schedule // when, checked by add
	// cluster: one gateway per slot; else every gateway.
	cluster bool
	// refreshes names the product a periodic refresh job refreshes.
	refreshes string
	// untraced: a run is no trace of its own (the queue's drain, which
	// runs every second and traces each refresh it makes).
	untraced bool
	run      func(ctx context.Context, slot time.Time) error
}

// New returns a scheduler of the warming, refresh and domains that the
// products of the cache's registry declare (see primers.Product). It runs
// nothing before Start.
func New(opts Options) (*Scheduler, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	locker := NewSlotLocker(opts.Cache.Store(), opts.Owner, opts.Clock)
	locker.onSkip = func(job string) { m.runs.WithLabelValues(job, "other_gateway").Inc() }
	gs, err := gocron.NewScheduler(
		gocron.WithLocation(opts.Location),
		gocron.WithLogger(gocronLogger{opts.Logger}),
		gocron.WithDistributedLocker(locker),
		gocron.WithGlobalJobOptions(gocron.WithEventListeners(
			gocron.AfterLockError(func(_ uuid.UUID, job string, err error) {
				if !errors.Is(err, ErrOtherGateway) {
					m.runs.WithLabelValues(job, "lock_failed").Inc()
					opts.Logger.Warn("job skipped: cannot take its lease", "job", job, "err", err)
				}
			}),
		)),
	)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	s := &Scheduler{
		runCtx:    runCtx,
		runCancel: runCancel,
		idle:      make(chan struct{}),
		opts:      opts,
		cache:     opts.Cache,
		gs:        gs,
		locker:    locker,
		m:         m,
		fails:     newFailLog(opts.Logger),
		names:     map[string]bool{},
		warmed:    map[string][]string{},
		ready:     make(chan struct{}),
		life:      lifecycle.New(),
	}
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(tracing.Scope)
	}
	if opts.Worker != nil {
		w := opts.Worker
		err := s.add(jobSpec{name: "queue/drain", when: primers.Every(opts.DrainInterval), untraced: true, run: func(ctx context.Context, _ time.Time) error {
			_, err := w.Drain(ctx)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}})
		if err != nil {
			s.discard()
			return nil, err
		}
	}
	for _, p := range opts.Cache.Registry().Products() {
		if err := s.declare(p); err != nil {
			s.discard()
			return nil, err
		}
	}
	return s, nil
}

// discard releases what New made, for a scheduler New does not return.
func (s *Scheduler) discard() {
	s.life.Close()
	s.runCancel()
	_ = s.gs.Shutdown()
}

var validJobName = regexp.MustCompile(`^[A-Za-z0-9_./:-]+$`)

func (s *Scheduler) add(j jobSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("scheduler: job %q added after Start", j.name)
	}
	if !validJobName.MatchString(j.name) {
		return fmt.Errorf("scheduler: job name %q must match %s", j.name, validJobName)
	}
	if s.names[j.name] {
		return fmt.Errorf("scheduler: job %q declared twice", j.name)
	}
	sch, err := check(j.when, s.opts.Location, s.opts.Clock.Now())
	if err != nil {
		return fmt.Errorf("scheduler: job %q: %w", j.name, err)
	}
	j.schedule = sch
	s.names[j.name] = true
	s.jobs = append(s.jobs, j)
	if j.cluster {
		s.locker.add(j.name, sch)
	}
	return nil
}

// Process declares a named job (KCK's process) that runs fn on schedule
// once per slot for the whole cluster. fn's context ends when the scheduler
// closes.
func (s *Scheduler) Process(name string, when primers.Schedule, fn func(ctx context.Context) error) error {
	if fn == nil {
		return fmt.Errorf("scheduler: process %q: nil function", name)
	}
	return s.add(jobSpec{name: name, when: when, cluster: true, run: func(ctx context.Context, _ time.Time) error {
		return fn(ctx)
	}})
}

// declare adds the refresh job, warming and domain that p declares. The
// registry checked its schedules and warm keys; a domain's key is checked
// here, once every product it may name is registered.
func (s *Scheduler) declare(p *primers.Product) error {
	if !p.Refresh.IsZero() {
		name := "refresh/" + p.Name
		err := s.add(jobSpec{name: name, when: p.Refresh, refreshes: p.Name, run: func(ctx context.Context, slot time.Time) error {
			return s.refreshProduct(ctx, p.Name, slot)
		}})
		if err != nil {
			return err
		}
	}
	if !p.Refresh.IsZero() || len(p.Warm) > 0 || p.WarmKeys != nil {
		s.mu.Lock()
		s.warming = append(s.warming, p)
		s.mu.Unlock()
	}
	if p.Domain.IsZero() {
		return nil
	}
	if _, err := s.cache.Registry().ParseKey(p.Domain.Key); err != nil {
		return fmt.Errorf("scheduler: domain of %q: %w", p.Name, err)
	}
	dj := &domainJob{product: p.Name, key: p.Domain.Key}
	err := s.add(jobSpec{name: "domain/" + p.Name, when: p.Domain.Schedule, cluster: true, run: func(ctx context.Context, slot time.Time) error {
		// Boot warming reads every member anyway, and computes the missing
		// ones under bucket leases, not the members' own: a run during it
		// could compute a member another gateway is warming. Once this
		// gateway's warming is done, every member is in the store.
		if !s.Ready() {
			return nil
		}
		return s.primeDomain(ctx, dj, slot)
	}})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.domains = append(s.domains, p)
	s.mu.Unlock()
	return nil
}

// Start starts the jobs and, in the background, warming. Jobs added later
// are refused.
func (s *Scheduler) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("scheduler: started twice")
	}
	s.started = true
	now := time.Now()
	s.checkFreshnessTargets(now)
	for _, j := range s.jobs {
		opts := append([]gocron.JobOption{
			gocron.WithName(j.name),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
		}, j.schedule.startOptions(now)...)
		if !j.cluster {
			opts = append(opts, gocron.WithDisabledDistributedJobLocker(true))
		}
		if _, err := s.gs.NewJob(j.schedule.definition(), gocron.NewTask(s.task(j)), opts...); err != nil {
			return fmt.Errorf("scheduler: job %q: %w", j.name, err)
		}
	}
	s.gs.Start()
	s.life.Go(func(ctx context.Context) {
		if _, err := s.Warm(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("warming failed", "err", err)
		}
		s.markReady()
	})
	return nil
}

// task wraps a job's run with its slot, metrics, logging and panic recovery.
func (s *Scheduler) task(j jobSpec) func() error {
	return func() (err error) {
		s.enter()
		defer s.leave()
		ctx := s.runCtx
		slot, period := j.schedule.slot(s.opts.Clock.Now())
		start := time.Now()
		span := trace.SpanFromContext(ctx) // none
		if !j.untraced {
			ctx, span = tracing.Root(ctx, s.tracer, "kck.job "+j.name, trace.SpanContext{}, trace.WithAttributes(
				attribute.String("kck.job", j.name), attribute.String("kck.slot", slot.UTC().Format(time.RFC3339))))
		}
		defer func() {
			if r := recover(); r != nil {
				s.opts.Logger.ErrorContext(ctx, "job panicked", "job", j.name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("job %s panicked: %v", j.name, r)
			}
			tracing.End(span, err)
			s.m.duration.WithLabelValues(j.name).Observe(time.Since(start).Seconds())
			outcome := "ok"
			if err != nil {
				outcome = "failed"
				s.fails.failed(j.name, slot, err)
			} else {
				s.fails.succeeded(j.name)
			}
			s.m.runs.WithLabelValues(j.name, outcome).Inc()
		}()
		ctx = context.WithValue(ctx, slotKey{}, slot)
		return j.run(context.WithValue(ctx, periodKey{}, period), slot)
	}
}

type slotKey struct{}

type periodKey struct{}

// slotOpens is when the work of ctx's slot may begin: a gateway's ticker
// fires up to half a period before the slot's instant (they drift), and
// work started from then on belongs to the slot.
func slotOpens(ctx context.Context, slot time.Time) time.Time {
	period, _ := ctx.Value(periodKey{}).(time.Duration)
	return slot.Add(-period / 2)
}

// checkFreshnessTargets warns of products whose freshness target no
// periodic refresh meets: their values will grow older than it whenever
// their sources do not change (a target is watched, not enforced).
func (s *Scheduler) checkFreshnessTargets(now time.Time) {
	period := map[string]time.Duration{}
	for _, j := range s.jobs {
		if j.refreshes != "" {
			_, period[j.refreshes] = j.schedule.slot(now)
		}
	}
	for _, p := range s.cache.Registry().Products() {
		if p.FreshnessTarget <= 0 {
			continue
		}
		switch every, ok := period[p.Name]; {
		case !ok:
			s.opts.Logger.Warn("product has a freshness target and no periodic refresh: its values grow older than the target while its sources do not change",
				"product", p.Name, "target", p.FreshnessTarget.String())
		case every > p.FreshnessTarget:
			s.opts.Logger.Warn("product is refreshed less often than its freshness target",
				"product", p.Name, "target", p.FreshnessTarget.String(), "refresh_every", every.String())
		}
	}
}

// Slot returns the scheduled instant a job's run belongs to, from the
// context the job was given (zero outside a job). A cluster-wide job runs
// once per slot, so the slot can name its work (an idempotency key, a
// report's period) whichever gateway runs it and however late it started.
func Slot(ctx context.Context) time.Time {
	t, _ := ctx.Value(slotKey{}).(time.Time)
	return t
}

// enter and leave count a job run under way.
func (s *Scheduler) enter() {
	s.runMu.Lock()
	s.running++
	s.runMu.Unlock()
}

func (s *Scheduler) leave() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.running--
	if s.stopping && s.running == 0 {
		s.closeIdle()
	}
}

func (s *Scheduler) closeIdle() {
	select {
	case <-s.idle:
	default:
		close(s.idle)
	}
}

// Stop stops the scheduler taking on work, for a gateway that shuts down:
// no job run starts from now on (gocron stops scheduling them; a slot a
// cluster-wide job did not take is taken by another gateway), the queue
// worker claims no more (see queue.Worker.Stop) and boot warming ends.
// The runs under way go on until they finish or ctx ends; Stop returns
// then, with ctx's error if some still run. Close cancels those. Stop
// before Start does nothing.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.runMu.Lock()
	if !s.stopping {
		s.stopping = true
		s.life.Cancel() // warming
		if s.opts.Worker != nil {
			s.opts.Worker.Stop()
		}
		// StopJobs waits for the runs under way (which its cancelling
		// does not reach: they run on runCtx), so not here.
		s.life.Go(func(context.Context) {
			if err := s.gs.StopJobs(); err != nil && s.runCtx.Err() == nil {
				s.opts.Logger.Warn("scheduler: stopping the jobs", "err", err)
			}
		})
		if s.running == 0 {
			s.closeIdle()
		}
	}
	s.runMu.Unlock()
	select {
	case <-s.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: job runs still under way: %w", ctx.Err())
	}
}

// Close stops the jobs and warming, cancels the runs under way and waits
// for them. It does not close the cache, the queue or the store.
func (s *Scheduler) Close() error {
	s.runCancel()
	s.life.Close() // warming, and Stop's StopJobs
	err := s.gs.Shutdown()
	s.markReady()
	return err
}

// Ready reports whether warming has finished (or nothing was to be warmed
// and the scheduler started).
func (s *Scheduler) Ready() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// ErrWarming is the readiness error while boot warming runs.
var ErrWarming = errors.New("boot warming is not done")

// WarmProgress reports how many of boot warming's keys are done (ok or
// failed) and how many it has in all; total is 0 until the keys are known.
func (s *Scheduler) WarmProgress() (done, total int) {
	return int(s.warmDone.Load()), int(s.warmTotal.Load())
}

// WaitReady waits until Ready or ctx is done.
func (s *Scheduler) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scheduler) markReady() {
	s.readyOnce.Do(func() {
		s.m.ready.Set(1)
		close(s.ready)
	})
}

// refreshProduct asks for a refresh of the product's keys this gateway
// knows, as requested when the slot opened: a key another gateway computed
// in this slot is skipped, or shared if its run is under way (the gateways'
// tickers fire around the slot's instant, some before it).
func (s *Scheduler) refreshProduct(ctx context.Context, product string, slot time.Time) error {
	keys := s.cache.Keys(product)
	s.mu.Lock()
	keys = append(keys, s.warmed[product]...)
	s.mu.Unlock()
	slices.Sort(keys)
	keys = slices.Compact(keys)
	return s.RefreshKeys(ctx, keys, slotOpens(ctx, slot))
}

// RefreshKeys asks for a refresh of keys requested at time at: it enqueues
// them when the scheduler has a Queue, else refreshes them now (Concurrency
// at a time), skipping keys with a value computed after at.
func (s *Scheduler) RefreshKeys(ctx context.Context, keys []string, at time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	if s.opts.Queue != nil {
		if err := s.opts.Queue.EnqueueMany(ctx, keys, at); err != nil {
			return fmt.Errorf("enqueue %d refreshes: %w", len(keys), err)
		}
		s.m.requests.WithLabelValues("enqueued").Add(float64(len(keys)))
		return nil
	}
	job := trace.SpanContextFromContext(ctx)
	n, firstErr := s.eachErr(ctx, keys, func(ctx context.Context, key string) (err error) {
		// Each refresh is a trace of its own, linked to the job's run.
		ctx, span := tracing.Root(ctx, s.tracer, "kck.refresh", job, trace.WithAttributes(
			tracing.AttrKey.String(key), tracing.AttrTrigger.String("schedule")))
		defer func() { tracing.End(span, err) }()
		if queue.StoredAfter(ctx, s.cache, key, at) {
			s.m.requests.WithLabelValues("skipped_fresh").Inc()
			return nil
		}
		// Asked at at: a run another gateway started since answers it.
		if _, err := s.cache.RefreshAskedAt(ctx, key, at); err != nil {
			s.m.requests.WithLabelValues("failed").Inc()
			return err
		}
		s.m.requests.WithLabelValues("refreshed").Inc()
		return nil
	})
	if n > 0 {
		return fmt.Errorf("%d of %d refreshes failed, the first: %w", n, len(keys), firstErr)
	}
	return ctx.Err()
}

// eachErr is each for a fn that can fail: it returns how many calls failed
// and the first error.
func (s *Scheduler) eachErr(ctx context.Context, keys []string, fn func(context.Context, string) error) (failed int, first error) {
	var mu sync.Mutex
	s.each(ctx, keys, func(ctx context.Context, key string) {
		if err := fn(ctx, key); err != nil {
			mu.Lock()
			if failed++; failed == 1 {
				first = err
			}
			mu.Unlock()
		}
	})
	return failed, first
}

// each calls fn for every key, Concurrency at a time, until ctx is done.
func (s *Scheduler) each(ctx context.Context, keys []string, fn func(context.Context, string)) {
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for _, k := range keys {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(ctx, k)
		})
	}
	wg.Wait()
}

// gocronLogger passes gocron's lines to slog, its routine Info lines
// (scheduler created, started) as Debug.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug(msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Debug(msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn(msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error(msg, args...) }
