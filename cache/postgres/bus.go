package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/cache"
)

// Bus is the change bus of the gateways sharing a PostgreSQL store when no
// NATS bus is configured (cache.Bus): announcements are NOTIFYs on a
// channel of the store's schema, each gateway LISTENs on one connection of
// its own. It suits the few gateways this store is for: PostgreSQL sends
// every notification to every listener, and a NOTIFY takes a lock at
// commit that serialises notifying transactions database-wide, so past a
// few thousand announcements a second (or tens of gateways) use NATS
// (--bus-url), which this bus steps aside for.
//
// A notification's payload is at most 8000 bytes: a change is sent as
// base64 of its wire form, with its value when that fits (about 5.8 KiB
// of JSON), else without (the others then read the store).
//
// Announcements are sent by one goroutine, several per statement, in the
// order Publish took them: PostgreSQL delivers notifications in commit
// order, and a receiver takes one of an origin's announcements arriving
// before an earlier one for a missed one (and drops its whole tier), which
// NOTIFYs sent on a pool's connections at once did all the time. Publish
// only queues (the cache calls it under a lock), so an announcement never
// waits for the database.
type Bus struct {
	s       *Store
	channel string
	log     *slog.Logger

	queue      chan string   // payloads, in Publish order
	sendFailed atomic.Bool   // a batch failed since Publish last said so
	stopSend   chan struct{} // closed by Close
	sent       chan struct{} // closed when the sender returned
	closeOnce  sync.Once

	mu      sync.Mutex
	handler *cache.BusHandler
	up      bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// publishQueue bounds the announcements waiting to be sent (past it
// Publish fails, and the cache has every gateway resync once its bus is
// back); publishBatch the notifications sent in one statement.
const (
	publishQueue = 8192
	publishBatch = 256
)

var _ cache.Bus = (*Bus)(nil)

// maxNotify keeps a payload under PostgreSQL's 8000-byte limit.
const maxNotify = 7900

// Bus returns the store's LISTEN/NOTIFY bus; Subscribe starts listening
// and Close stops.
func (s *Store) Bus(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{s: s, channel: "kck_bus_" + s.cfg.Schema, log: log,
		queue: make(chan string, publishQueue), stopSend: make(chan struct{}), sent: make(chan struct{})}
	go b.send()
	return b
}

// Publish queues ch for every listener. An error says it was not queued,
// or that announcements queued before could not be sent.
func (b *Bus) Publish(ch cache.Change) error {
	payload := base64.StdEncoding.EncodeToString(ch.AppendBinary(nil))
	if len(payload) > maxNotify && ch.Entry != nil {
		ch.Entry = nil
		payload = base64.StdEncoding.EncodeToString(ch.AppendBinary(nil))
	}
	if len(payload) > maxNotify {
		return fmt.Errorf("postgres bus: the announcement of %q does not fit a notification", ch.Key)
	}
	select {
	case b.queue <- payload:
	default:
		return fmt.Errorf("postgres bus: %d announcements wait to be sent; %q not sent", publishQueue, ch.Key)
	}
	if b.sendFailed.Swap(false) {
		return fmt.Errorf("postgres bus: announcements before %q could not be sent", ch.Key)
	}
	return nil
}

// send notifies the listeners of what Publish queued, in order, until
// Close; then what is left, for a short while.
func (b *Bus) send() {
	defer close(b.sent)
	batch := make([]string, 0, publishBatch)
	for {
		select {
		case p := <-b.queue:
			batch = append(batch[:0], p)
		case <-b.stopSend:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				batch = batch[:0]
				for len(batch) < publishBatch && len(b.queue) > 0 {
					batch = append(batch, <-b.queue)
				}
				if len(batch) == 0 {
					return
				}
				b.notify(ctx, batch)
			}
			return
		}
		for len(batch) < publishBatch && len(b.queue) > 0 {
			batch = append(batch, <-b.queue)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.notify(ctx, batch)
		cancel()
	}
}

// notify sends a batch in one statement: its notifications are delivered
// in order, after those of the statements before.
func (b *Bus) notify(ctx context.Context, batch []string) {
	b.s.writes.Add(1)
	_, err := b.s.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, b.channel, batch)
	if err != nil && !b.sendFailed.Swap(true) {
		b.log.Warn("change bus (postgres): announcements not sent; the other gateways drop their in-process tier when they notice", "announcements", len(batch), "err", unavailable(err))
	}
}

// Connected reports whether the listening connection is up.
func (b *Bus) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up
}

// Subscribe starts listening: every announcement (this gateway's own too,
// which the cache ignores) goes to h, in the order they were committed.
func (b *Bus) Subscribe(h cache.BusHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handler != nil {
		return errors.New("postgres bus: Subscribe called twice")
	}
	b.handler = &h
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	conn, err := b.listen(ctx)
	if err == nil {
		b.up = true
	}
	go b.run(ctx, conn)
	return nil
}

func (b *Bus) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, b.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// run receives on conn, reconnecting after a loss; a loss and a return
// are told to the handler (announcements made meanwhile were missed).
func (b *Bus) run(ctx context.Context, conn *pgx.Conn) {
	defer close(b.done)
	wait := 100 * time.Millisecond
	for {
		if conn != nil {
			b.set(true, nil)
			wait = 100 * time.Millisecond
			err := b.receive(ctx, conn)
			conn.Close(context.Background())
			if ctx.Err() != nil {
				return
			}
			b.set(false, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
		var err error
		if conn, err = b.listen(ctx); err != nil {
			conn = nil
			b.set(false, err)
		}
	}
}

// set reports the connection's state to the handler when it changes.
func (b *Bus) set(up bool, err error) {
	b.mu.Lock()
	h, changed := b.handler, b.up != up
	b.up = up
	b.mu.Unlock()
	if !changed {
		return
	}
	if up {
		b.log.Info("change bus (postgres): listening", "channel", b.channel)
		if h.Resumed != nil {
			h.Resumed()
		}
		return
	}
	if err == nil {
		err = errors.New("not connected")
	}
	if h.Lost != nil {
		h.Lost(err)
	}
}

func (b *Bus) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(n.Payload))
		var ch cache.Change
		if err == nil {
			ch, err = cache.ParseChange(raw)
		}
		if err != nil {
			b.log.Warn("change bus (postgres): bad announcement", "err", err, "bytes", len(n.Payload))
			continue
		}
		b.handler.Change(ch)
	}
}

// Close sends what is still queued (a short while at most) and stops
// listening; call it after the cache that uses it is closed.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { close(b.stopSend) })
	<-b.sent
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// LeaseHolder reads who holds a lease, with a plain read (see
// cluster.HolderReader); "" when nobody does or it ran out.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var owner string
	s.reads.Add(1)
	err := s.pool.QueryRow(ctx, `SELECT owner FROM `+pgx.Identifier{s.cfg.Schema, "leases"}.Sanitize()+
		` WHERE name = $1 AND expires_at > now()`, name).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres lease %q: %w", name, unavailable(err))
	}
	return owner, nil
}
