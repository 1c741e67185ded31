// Package cluster elects the one gateway of a cluster that does a job
// which must run once, such as following the source tables' changes. The
// election is a lease in the shared store: the leader renews it every
// third of its TTL and stops leading before it could have run out; the
// others look every third of the TTL and take it once it has. So a leader
// that dies is replaced within TTL plus a third of it, and two gateways
// never lead at once unless a renewal takes longer than a third of the TTL
// to be answered and a clock runs that far off.
package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/internal/lifecycle"
)

// LeaseStore holds the lease: cache.Store's leases.
type LeaseStore interface {
	Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, name, owner string) error
}

// HolderReader is implemented by stores that can say who holds a lease
// with a plain read: the gateways that do not lead look with it rather
// than with a lightweight transaction (Cassandra's costs a Paxos round),
// so that looking costs the store little however many gateways look.
type HolderReader interface {
	LeaseHolder(ctx context.Context, name string) (string, error)
}

// Options configure a Leader.
type Options struct {
	Store LeaseStore
	// Name is the lease's name, the same on every gateway.
	Name string
	// Owner is this gateway (the cache's Owner).
	Owner string
	// TTL of the lease. Default 10 s.
	TTL time.Duration
	// Lead runs while this gateway leads; its context ends when it stops
	// leading (the lease was lost, or Close). Required.
	Lead func(ctx context.Context)
	// Eligible, when set, says whether this gateway may lead now: one that
	// is not does not take the lease, and one that leads gives it up (the
	// follower of the source tables must hear and be heard on the bus:
	// cut off from it, its refreshes would reach no other gateway).
	Eligible func() bool
	Logger   *slog.Logger
	// Registerer receives kck_leader{job=Name}, 1 while this gateway
	// leads; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Leader takes part in one election.
type Leader struct {
	opts    Options
	leading atomic.Bool
	life    *lifecycle.Group // the election's goroutine (Lead runs under it)
}

// Start starts taking part.
func Start(opts Options) (*Leader, error) {
	if opts.Store == nil || opts.Lead == nil || opts.Name == "" || opts.Owner == "" {
		return nil, errors.New("cluster: Store, Name, Owner and Lead are required")
	}
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.TTL < 300*time.Millisecond {
		return nil, errors.New("cluster: the lease TTL must be at least 300ms")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Leader{opts: opts, life: lifecycle.New()}
	if opts.Registerer != nil {
		err := opts.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "kck_leader",
			Help:        "1 while this gateway leads the cluster-wide job (follow/source: following the source tables' change log).",
			ConstLabels: prometheus.Labels{"job": opts.Name},
		}, func() float64 {
			if l.Leading() {
				return 1
			}
			return 0
		}))
		if err != nil {
			return nil, err
		}
	}
	l.life.Go(l.run)
	return l, nil
}

// Leading reports whether this gateway leads now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Close stops taking part: it stops leading, waits for Lead to return and
// gives the lease back, so that another gateway takes over at once.
func (l *Leader) Close() {
	l.life.Close()
}

// term is one spell of leading: Lead running under its own context.
type term struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *Leader) run(ctx context.Context) {
	o := l.opts
	every := o.TTL / 3
	var (
		cur     *term
		renewed time.Time // when the lease was last taken or renewed
	)
	stop := func(why string) {
		if cur == nil {
			return
		}
		cur.cancel()
		<-cur.done
		cur = nil
		l.leading.Store(false)
		o.Logger.Info("cluster: stopped leading", "job", o.Name, "why", why)
	}
	defer func() {
		stop("closing")
		rctx, cancel := context.WithTimeout(context.Background(), o.TTL)
		defer cancel()
		if err := o.Store.Release(rctx, o.Name, o.Owner); err != nil {
			o.Logger.Warn("cluster: giving the lease back failed; another gateway takes over when it runs out", "job", o.Name, "err", err)
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cur != nil {
			select {
			case <-cur.done: // Lead returned by itself: let another try
				stop("the job ended")
				rctx, cancel := context.WithTimeout(ctx, every)
				_ = o.Store.Release(rctx, o.Name, o.Owner)
				cancel()
				t.Reset(every)
				continue
			default:
			}
		}
		if o.Eligible != nil && !o.Eligible() {
			if cur != nil {
				stop("not eligible now")
				rctx, cancel := context.WithTimeout(ctx, every)
				_ = o.Store.Release(rctx, o.Name, o.Owner)
				cancel()
			}
			t.Reset(every)
			continue
		}
		got, err := l.try(ctx, cur != nil)
		now := time.Now()
		switch {
		case got:
			renewed = now
			if cur == nil {
				cur = l.begin(ctx)
			}
		case err == nil:
			stop("another gateway holds the lease")
		case cur != nil && now.Sub(renewed) >= o.TTL-every:
			// Not renewed for two thirds of the TTL: stop before the lease
			// can run out under us.
			stop("could not renew the lease: " + err.Error())
		case ctx.Err() == nil:
			o.Logger.Warn("cluster: lease", "job", o.Name, "err", err)
		}
		t.Reset(every)
	}
}

// begin starts a term.
func (l *Leader) begin(ctx context.Context) *term {
	lctx, cancel := context.WithCancel(ctx)
	t := &term{cancel: cancel, done: make(chan struct{})}
	l.leading.Store(true)
	l.opts.Logger.Info("cluster: leading", "job", l.opts.Name, "owner", l.opts.Owner)
	go func() {
		defer close(t.done)
		l.opts.Lead(lctx)
	}()
	return t
}

// try takes or renews the lease. A gateway that does not lead first reads
// who holds it, when the store can say without a transaction.
func (l *Leader) try(ctx context.Context, leading bool) (bool, error) {
	o := l.opts
	ctx, cancel := context.WithTimeout(ctx, o.TTL/3)
	defer cancel()
	if hr, ok := o.Store.(HolderReader); ok && !leading {
		holder, err := hr.LeaseHolder(ctx, o.Name)
		if err != nil {
			return false, err
		}
		if holder != "" && holder != o.Owner {
			return false, nil
		}
	}
	return o.Store.Acquire(ctx, o.Name, o.Owner, o.TTL)
}
