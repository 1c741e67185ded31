package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/lifecycle"
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
type Bus struct {
	s       *Store
	channel string
	log     *slog.Logger

	mu      sync.Mutex
	handler *cache.BusHandler
	up      bool
	life    *lifecycle.Group // the listening goroutine
}

var _ cache.Bus = (*Bus)(nil)

var errNotListening = errors.New("not connected to the database")

// maxNotify keeps a payload under PostgreSQL's 8000-byte limit.
const maxNotify = 7900

// Bus returns the store's LISTEN/NOTIFY bus; Subscribe starts listening
// and Close stops.
func (s *Store) Bus(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	return &Bus{s: s, channel: "kck_bus_" + s.cfg.Schema, log: log, life: lifecycle.New()}
}

// Publish notifies every listener of ch.
func (b *Bus) Publish(ch cache.Change) error {
	payload := base64.StdEncoding.EncodeToString(ch.AppendBinary(nil))
	if len(payload) > maxNotify && ch.Entry != nil {
		ch.Entry = nil
		payload = base64.StdEncoding.EncodeToString(ch.AppendBinary(nil))
	}
	if len(payload) > maxNotify {
		return fmt.Errorf("postgres bus: the announcement of %q does not fit a notification", ch.Key)
	}
	if !b.Connected() {
		// The database is not answering our listener: fail at once rather
		// than hold up the write that announces (the cache asks everyone
		// to resync once the bus is back).
		return fmt.Errorf("postgres bus: notify %q: %w", ch.Key, errNotListening)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.s.writes.Add(1)
	if _, err := b.s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, b.channel, payload); err != nil {
		return fmt.Errorf("postgres bus: notify %q: %w", ch.Key, unavailable(err))
	}
	return nil
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
	conn, err := b.listen(b.life.Context())
	if err == nil {
		b.up = true
	}
	b.life.Go(func(ctx context.Context) { b.run(ctx, conn) })
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

// Close stops listening (after the cache that uses it).
func (b *Bus) Close() error {
	b.life.Close()
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
