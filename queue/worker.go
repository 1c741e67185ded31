package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/tracing"
)

// Versions is what StoredAfter reads: a cache's in-process tier and its
// store. *cache.Cache is one.
type Versions interface {
	// Peek returns the version of a fresh in-process value of key.
	Peek(key string) (version uint64, ok bool)
	Store() cache.Store
}

// Cache is what a Worker needs of the cache it refreshes: *cache.Cache is
// one, and so is any refresh path built on one (a Worker refreshes through
// it, whatever else that path does with a refresh).
type Cache interface {
	Versions
	Registry() *primers.Registry
	// Owner names the gateway: the worker's default Name.
	Owner() string
	// Refresh recomputes a canonical key and stores it.
	Refresh(ctx context.Context, key string) (cache.Result, error)
}

var _ Cache = (*cache.Cache)(nil)

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	// Queue is drained. Required.
	Queue Store
	// Cache refreshes the keys. Required.
	Cache Cache
	// Name is the worker's name in claims. Default Cache.Owner(): one
	// worker per gateway. Two workers must never share a name.
	Name string
	// Batch is how many keys one claim takes. Default 20 (KCK's).
	Batch int
	// LeaseTTL is how long a claim is held. A worker that dies holds its
	// keys this long; a batch whose refreshes take longer is refreshed
	// again by another worker. Default 2 minutes.
	LeaseTTL time.Duration
	// Concurrency bounds the refreshes of one batch run at once. Default 4.
	Concurrency int
	// PollInterval is how long Run waits when the queue has nothing to
	// claim. Default 1 s.
	PollInterval time.Duration
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// Registerer receives the worker's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// TracerProvider, when set, makes each refresh of a claimed key a trace
	// of its own (kck.refresh, trigger queue), linked to the trace of the
	// request that queued it (Item.Trace). Nil: no tracing.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns o with defaults filled in.
func (o WorkerOptions) WithDefaults() WorkerOptions {
	if o.Name == "" && o.Cache != nil {
		o.Name = o.Cache.Owner()
	}
	if o.Batch == 0 {
		o.Batch = 20
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 2 * time.Minute
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (o WorkerOptions) validate() error {
	var errs []error
	if o.Queue == nil {
		errs = append(errs, errors.New("option Queue is required"))
	}
	if o.Cache == nil {
		errs = append(errs, errors.New("option Cache is required"))
	}
	if o.Batch < 0 || o.LeaseTTL < 0 || o.Concurrency < 0 || o.PollInterval < 0 {
		errs = append(errs, errors.New("sizes and durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue worker options: %w", err)
	}
	return nil
}

// Worker drains a refresh queue into a cache: it claims batches, refreshes
// each key (unless a value computed after the request is already stored),
// and marks it done, or releases it for a retry. Several workers, in one
// gateway or many, may drain the same queue.
type Worker struct {
	opts   WorkerOptions
	m      *workerMetrics
	tracer trace.Tracer // nil: no tracing
	// stopped: claim nothing more (see Stop).
	stopped atomic.Bool
}

// Stop makes the worker claim nothing more, for a gateway that shuts
// down: a Drain under way finishes the batch it holds (its refreshes run
// on, under its context) and returns instead of claiming the next, so the
// keys it claimed are marked done rather than left to their lease (a
// worker cancelled mid-batch leaves them for LeaseTTL, as a dead one
// does). Drain and Run return at once from then on.
func (w *Worker) Stop() { w.stopped.Store(true) }

// NewWorker returns a worker. It starts nothing: call Drain or Run.
func NewWorker(opts WorkerOptions) (*Worker, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newWorkerMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Worker{opts: opts, m: m}
	if opts.TracerProvider != nil {
		w.tracer = opts.TracerProvider.Tracer(tracing.Scope)
	}
	return w, nil
}

// Name is the worker's name in claims.
func (w *Worker) Name() string { return w.opts.Name }

// Outcome is what the worker did with one claimed key.
type Outcome string

// The outcomes, as in the kck_queue_refreshes_total metric.
const (
	// Refreshed: recomputed and marked done.
	Refreshed Outcome = "refreshed"
	// SkippedFresh: a value computed after the last request was already
	// stored; marked done without recomputing.
	SkippedFresh Outcome = "skipped_fresh"
	// NoData: the primer says the instance has no data; marked done.
	NoData Outcome = "no_data"
	// Failed: the refresh failed; released for a retry with backoff (or
	// poisoned).
	Failed Outcome = "failed"
	// LostClaim: done, but the claim had run out and another worker took
	// the key: it may be refreshed twice.
	LostClaim Outcome = "lost_claim"
	// Abandoned: the worker was stopped mid-refresh; the claim stays until
	// its lease runs out and another worker takes the key.
	Abandoned Outcome = "abandoned"
)

// Report counts what one Drain did.
type Report struct {
	Claimed  int
	Outcomes map[Outcome]int
}

// Drain claims and processes batches until the queue has nothing left to
// claim or ctx is done (then it returns ctx's error and leaves its claims to
// their leases, as a crashed worker would).
func (w *Worker) Drain(ctx context.Context) (Report, error) {
	rep := Report{Outcomes: map[Outcome]int{}}
	var mu sync.Mutex
	defer func() { _, _ = w.UpdateStats(context.WithoutCancel(ctx)) }()
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if w.stopped.Load() {
			return rep, nil
		}
		items, err := w.opts.Queue.Claim(ctx, w.opts.Name, w.opts.Batch, w.opts.LeaseTTL)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			return rep, fmt.Errorf("queue worker %s: claim: %w", w.opts.Name, err)
		}
		if len(items) == 0 {
			return rep, nil
		}
		w.m.claims.Add(float64(len(items)))
		rep.Claimed += len(items)
		sem := make(chan struct{}, w.opts.Concurrency)
		var wg sync.WaitGroup
		for _, it := range items {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				out := w.process(ctx, it)
				w.m.outcomes.WithLabelValues(w.productOf(it.Key), string(out)).Inc()
				mu.Lock()
				rep.Outcomes[out]++
				mu.Unlock()
			})
		}
		wg.Wait()
	}
}

// Run drains the queue until ctx is done, waiting PollInterval whenever it
// is empty. Claim errors are logged and retried after PollInterval.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if w.stopped.Load() {
			return nil
		}
		if _, err := w.Drain(ctx); err != nil && ctx.Err() == nil {
			w.opts.Logger.Error("refresh queue drain failed", "worker", w.opts.Name, "err", err)
		}
		t.Reset(w.opts.PollInterval)
	}
}

// process refreshes one claimed item and ends its claim.
func (w *Worker) process(ctx context.Context, it Item) (out Outcome) {
	cause, _ := tracing.ParseTraceParent(it.Trace)
	ctx, span := tracing.Root(ctx, w.tracer, "kck.refresh", cause, trace.WithAttributes(
		tracing.AttrKey.String(it.Key), tracing.AttrTrigger.String("queue"), attribute.Int64("kck.queue.requests", it.Requests)))
	defer func() {
		span.SetAttributes(attribute.String("kck.queue.outcome", string(out)))
		if out == Failed {
			span.SetStatus(codes.Error, "refresh failed")
		}
		span.End()
	}()
	log := w.opts.Logger
	k, err := w.opts.Cache.Registry().ParseKey(it.Key)
	if err != nil {
		return w.release(ctx, it, Permanent(err))
	}
	key := k.String()
	if StoredAfter(ctx, w.opts.Cache, key, it.LastRequested) {
		return w.done(ctx, it, SkippedFresh)
	}
	start := time.Now()
	_, err = w.opts.Cache.Refresh(ctx, key)
	w.m.latency.Observe(time.Since(start).Seconds())
	switch {
	case ctx.Err() != nil:
		return Abandoned
	case err == nil:
		return w.done(ctx, it, Refreshed)
	case errors.Is(err, primers.ErrNoData):
		log.DebugContext(ctx, "queued refresh: no data", "key", it.Key, "err", err)
		return w.done(ctx, it, NoData)
	case errors.Is(err, primers.ErrUnknownProduct), errors.Is(err, primers.ErrMalformedKey),
		errors.Is(err, primers.ErrBadParams), errors.Is(err, cache.ErrNotSet):
		return w.release(ctx, it, Permanent(err))
	}
	return w.release(ctx, it, err)
}

// StoredAfter reports whether c's store (or c's in-process tier) holds a
// value of key computed after at. A version is the time its computation
// started, in microseconds, so such a value already reflects every change
// announced up to at, and a refresh requested at at can be skipped. key must
// be canonical.
func StoredAfter(ctx context.Context, c Versions, key string, at time.Time) bool {
	if at.IsZero() {
		return false
	}
	req := uint64(at.UnixMicro())
	if v, ok := c.Peek(key); ok && v > req {
		return true
	}
	e, err := c.Store().Get(ctx, key)
	return err == nil && e.Version > req
}

func (w *Worker) done(ctx context.Context, it Item, out Outcome) Outcome {
	err := w.opts.Queue.Done(ctx, w.opts.Name, it.Key, it.Version)
	switch {
	case err == nil:
		return out
	case errors.Is(err, ErrNotClaimed):
		w.opts.Logger.WarnContext(ctx, "refresh finished after its claim ran out; another worker may refresh it again", "key", it.Key, "worker", w.opts.Name, "err", err)
		return LostClaim
	case ctx.Err() != nil:
		return Abandoned
	}
	// The refresh happened; the row stays claimed and is refreshed again
	// after its lease: at-least-once.
	w.opts.Logger.ErrorContext(ctx, "refresh queue: marking done failed", "key", it.Key, "err", err)
	return out
}

func (w *Worker) release(ctx context.Context, it Item, cause error) Outcome {
	w.opts.Logger.WarnContext(ctx, "queued refresh failed", "key", it.Key, "attempt", it.Attempts+1, "err", cause)
	err := w.opts.Queue.Release(ctx, w.opts.Name, it.Key, it.Version, cause)
	if err != nil && !errors.Is(err, ErrNotClaimed) && ctx.Err() == nil {
		w.opts.Logger.ErrorContext(ctx, "refresh queue: release failed", "key", it.Key, "err", err)
	}
	return Failed
}

// UpdateStats reads the queue's Stats into the gauges and returns them.
// Drain calls it when it ends.
func (w *Worker) UpdateStats(ctx context.Context) (Stats, error) {
	st, err := w.opts.Queue.Stats(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	w.m.depth.Set(float64(st.Depth))
	w.m.claimed.Set(float64(st.Claimed))
	w.m.delayed.Set(float64(st.Delayed))
	w.m.poisoned.Set(float64(st.Poisoned))
	var age float64
	if !st.OldestRequest.IsZero() {
		age = max(0, time.Since(st.OldestRequest).Seconds())
	}
	w.m.oldestAge.Set(age)
	return st, nil
}

// productOf is key's product for metrics: "unknown" for a key of no
// registered product, so that odd keys cannot grow the label set.
func (w *Worker) productOf(key string) string {
	name, err := primers.SplitName(key)
	if err != nil || w.opts.Cache.Registry().Product(name) == nil {
		return "unknown"
	}
	return name
}
