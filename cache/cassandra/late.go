package cassandra

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/lifecycle"
	"github.com/kck-go/kck/queue"
)

// ErrNotConnected is what a Late store answers until it has connected.
var ErrNotConnected = errors.New("store not connected yet")

// Late is a store that connects to the cluster in the background and
// forwards to it once connected: a gateway started while Cassandra is down
// serves (computing what it is asked) and reports not ready, instead of
// failing to start.
type Late struct {
	cur  atomic.Pointer[Store]
	life *lifecycle.Group // the connecting goroutine
}

var (
	_ cache.Store     = (*Late)(nil)
	_ cache.NewPutter = (*Late)(nil)
	_ cache.OpCounter = (*Late)(nil)
	_ cache.Scanner   = (*Late)(nil)
)

// OpenLate starts connecting: once a second at first, backing off to every
// 30 s. prepare, when not nil, runs before each attempt to open (kck serve
// --migrate: the keyspace is created once the cluster answers).
func OpenLate(cfg Config, log *slog.Logger, prepare func(context.Context) error) *Late {
	l := &Late{life: lifecycle.New()}
	l.life.Go(func(ctx context.Context) {
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			var s *Store
			err := error(nil)
			if prepare != nil {
				err = prepare(ctx)
			}
			if err == nil {
				actx, acancel := context.WithTimeout(ctx, 30*time.Second)
				s, err = Open(actx, cfg)
				acancel()
			}
			if err == nil {
				l.cur.Store(s)
				log.Info("cassandra connected", "hosts", strings.Join(cfg.Hosts, ","))
				return
			}
			log.Warn("cassandra still unreachable", "err", err, "retry_in", (2 * wait).String())
		}
	})
	return l
}

func (l *Late) get() (*Store, error) {
	if s := l.cur.Load(); s != nil {
		return s, nil
	}
	return nil, ErrNotConnected
}

func (l *Late) Get(ctx context.Context, key string) (cache.Entry, error) {
	s, err := l.get()
	if err != nil {
		return cache.Entry{}, err
	}
	return s.Get(ctx, key)
}

func (l *Late) Put(ctx context.Context, e cache.Entry) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// PutNew is the store's PutNew (cache.NewPutter).
func (l *Late) PutNew(ctx context.Context, e cache.Entry) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.PutNew(ctx, e)
}

func (l *Late) Delete(ctx context.Context, key string, version uint64) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Delete(ctx, key, version)
}

func (l *Late) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	s, err := l.get()
	if err != nil {
		return false, err
	}
	return s.Acquire(ctx, lease, owner, ttl)
}

func (l *Late) Release(ctx context.Context, lease, owner string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Release(ctx, lease, owner)
}

func (l *Late) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

// LeaseHolder is Store.LeaseHolder.
func (l *Late) LeaseHolder(ctx context.Context, name string) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	return s.LeaseHolder(ctx, name)
}

// Ops counts the store's requests once it is connected.
func (l *Late) Ops() cache.StoreOps {
	s, err := l.get()
	if err != nil {
		return cache.StoreOps{}
	}
	return s.Ops()
}

func (l *Late) Scan(ctx context.Context, fn func(cache.Entry) error) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Scan(ctx, fn)
}

func (l *Late) Close() error {
	l.life.Close()
	if s := l.cur.Load(); s != nil {
		return s.Close()
	}
	return nil
}

// Queue is the cluster's refresh queue: it answers ErrNotConnected until
// the store has connected, then forwards to the cluster's queue.
func (l *Late) Queue(cfg queue.Config) queue.Store { return &lateQueue{store: l, cfg: cfg} }

type lateQueue struct {
	store *Late
	cfg   queue.Config
	once  sync.Once
	q     *Queue
	err   error
}

var _ queue.Store = (*lateQueue)(nil)

func (l *lateQueue) get() (queue.Store, error) {
	s, err := l.store.get()
	if err != nil {
		return nil, err
	}
	l.once.Do(func() { l.q, l.err = s.Queue(l.cfg) })
	return l.q, l.err
}

func (l *lateQueue) Enqueue(ctx context.Context, key string, at time.Time) error {
	q, err := l.get()
	if err != nil {
		return err
	}
	return q.Enqueue(ctx, key, at)
}

func (l *lateQueue) EnqueueMany(ctx context.Context, keys []string, at time.Time) error {
	q, err := l.get()
	if err != nil {
		return err
	}
	return q.EnqueueMany(ctx, keys, at)
}

func (l *lateQueue) Claim(ctx context.Context, worker string, batch int, leaseTTL time.Duration) ([]queue.Item, error) {
	q, err := l.get()
	if err != nil {
		return nil, err
	}
	return q.Claim(ctx, worker, batch, leaseTTL)
}

func (l *lateQueue) Done(ctx context.Context, worker, key string, version uint64) error {
	q, err := l.get()
	if err != nil {
		return err
	}
	return q.Done(ctx, worker, key, version)
}

func (l *lateQueue) Release(ctx context.Context, worker, key string, version uint64, cause error) error {
	q, err := l.get()
	if err != nil {
		return err
	}
	return q.Release(ctx, worker, key, version, cause)
}

func (l *lateQueue) Get(ctx context.Context, key string) (queue.Item, error) {
	q, err := l.get()
	if err != nil {
		return queue.Item{}, err
	}
	return q.Get(ctx, key)
}

func (l *lateQueue) Remove(ctx context.Context, key string) error {
	q, err := l.get()
	if err != nil {
		return err
	}
	return q.Remove(ctx, key)
}

func (l *lateQueue) Stats(ctx context.Context) (queue.Stats, error) {
	q, err := l.get()
	if err != nil {
		return queue.Stats{}, err
	}
	return q.Stats(ctx)
}
