package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/queue"
)

// openStore opens the configured store. A Cassandra cluster that does not
// answer at start is not fatal: the gateway starts, says so, reports not
// ready, computes what it is asked, and connects as soon as it can.
func openStore(ctx context.Context, cfg serveConfig, log *slog.Logger) (cache.Store, error) {
	switch cfg.Store {
	case "embedded":
		return bolt.Open(cfg.DataDir, bolt.Options{})
	case "cassandra":
		s, err := cassandra.Open(ctx, cfg.Cassandra)
		if err == nil {
			return s, nil
		}
		if strings.Contains(err.Error(), "kck migrate") || strings.Contains(err.Error(), "cassandra config") {
			return nil, err // waiting would not help
		}
		log.Error("cassandra unreachable at start: serving without a store until it answers; /readyz fails meanwhile",
			"hosts", strings.Join(cfg.Cassandra.Hosts, ","), "err", err)
		return newLateStore(cfg.Cassandra, log), nil
	}
	return nil, fmt.Errorf("unknown store %q (embedded or cassandra)", cfg.Store)
}

// errNoStore is what a late store answers until it has connected.
var errNoStore = errors.New("store not connected yet")

// lateStore connects to Cassandra in the background and forwards to it once
// connected.
type lateStore struct {
	cur    atomic.Pointer[cassandra.Store]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ cache.Store      = (*lateStore)(nil)
	_ cache.ChangeFeed = (*lateStore)(nil)
)

func newLateStore(cfg cassandra.Config, log *slog.Logger) *lateStore {
	ctx, cancel := context.WithCancel(context.Background())
	l := &lateStore{cancel: cancel}
	l.wg.Go(func() {
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			actx, acancel := context.WithTimeout(ctx, 30*time.Second)
			s, err := cassandra.Open(actx, cfg)
			acancel()
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

func (l *lateStore) get() (*cassandra.Store, error) {
	if s := l.cur.Load(); s != nil {
		return s, nil
	}
	return nil, errNoStore
}

func (l *lateStore) Get(ctx context.Context, key string) (cache.Entry, error) {
	s, err := l.get()
	if err != nil {
		return cache.Entry{}, err
	}
	return s.Get(ctx, key)
}

func (l *lateStore) Put(ctx context.Context, e cache.Entry) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

func (l *lateStore) Delete(ctx context.Context, key string, version uint64) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Delete(ctx, key, version)
}

func (l *lateStore) Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error) {
	s, err := l.get()
	if err != nil {
		return false, err
	}
	return s.Acquire(ctx, lease, owner, ttl)
}

func (l *lateStore) Release(ctx context.Context, lease, owner string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Release(ctx, lease, owner)
}

func (l *lateStore) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (l *lateStore) Publish(ctx context.Context, ch cache.Change) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Publish(ctx, ch)
}

func (l *lateStore) Changes(ctx context.Context, since time.Time) ([]cache.Change, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Changes(ctx, since)
}

func (l *lateStore) Close() error {
	l.cancel()
	l.wg.Wait()
	if s := l.cur.Load(); s != nil {
		return s.Close()
	}
	return nil
}

// lateQueue is the refresh queue of a late store: it answers errNoStore
// until the store has connected, then forwards to the cluster's queue.
type lateQueue struct {
	store *lateStore
	cfg   queue.Config
	once  sync.Once
	q     *cassandra.Queue
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
