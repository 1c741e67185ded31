package source

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel of the change triggers.
const Channel = "kck_changes"

// maxPayload keeps a notification under PostgreSQL's 8,000-byte limit.
const maxPayload = 7900

// Migrate is the explicit, idempotent migration of the change feed: a
// trigger function, and on each table an AFTER INSERT/UPDATE/DELETE row
// trigger that NOTIFYs the table, the operation and the given key columns of
// the old and new row (tables maps a table to those columns). A payload that
// would exceed PostgreSQL's 8,000-byte limit says only "overflow", which
// means "anything in this table may have changed".
func Migrate(ctx context.Context, conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, tables map[string][]string) error {
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	sort.Strings(names)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Serialise concurrent migrations of several gateways.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7238)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, triggerFunction); err != nil {
			return fmt.Errorf("change feed: create function: %w", err)
		}
		for _, t := range names {
			cols := tables[t]
			args := make([]string, len(cols))
			for i, c := range cols {
				args[i] = quoteLiteral(c)
			}
			ident := pgx.Identifier{t}.Sanitize()
			trig := pgx.Identifier{"kck_changes_" + t}.Sanitize()
			stmt := fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s
				FOR EACH ROW EXECUTE FUNCTION kck_notify_change(%s)`, trig, ident, strings.Join(args, ", "))
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("change feed: trigger on %s: %w", t, err)
			}
		}
		return nil
	})
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var triggerFunction = `
CREATE OR REPLACE FUNCTION kck_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	payload text;
	keys_new jsonb;
	keys_old jsonb;
BEGIN
	IF TG_OP <> 'DELETE' THEN
		SELECT jsonb_object_agg(k, to_jsonb(NEW) -> k) INTO keys_new FROM unnest(TG_ARGV) AS k;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		SELECT jsonb_object_agg(k, to_jsonb(OLD) -> k) INTO keys_old FROM unnest(TG_ARGV) AS k;
	END IF;
	payload := jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'new', keys_new, 'old', keys_old)::text;
	IF octet_length(payload) > ` + fmt.Sprint(maxPayload) + ` THEN
		payload := jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'overflow', true)::text;
	END IF;
	PERFORM pg_notify('` + Channel + `', payload);
	RETURN NULL;
END
$$`

// Change is one changed source row.
type Change struct {
	Table string
	Op    string         // INSERT, UPDATE, DELETE
	New   map[string]any // key columns of the new row (nil for DELETE)
	Old   map[string]any // key columns of the old row (nil for INSERT)
	// Overflow: the row's keys did not fit a notification; treat the whole
	// table as changed.
	Overflow bool
}

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	// URL of the database.
	URL string
	// OnChange receives each change, in commit order.
	OnChange func(ctx context.Context, c Change)
	// OnResync runs after every reconnection (not the first connection):
	// changes committed while the listener was away were not seen, so
	// everything that depends on the source tables should be refreshed.
	OnResync func(ctx context.Context)
	Logger   *slog.Logger
}

// Listener LISTENs on Channel on a dedicated connection, reconnecting with
// backoff after a loss.
type Listener struct {
	opts   ListenerOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	connected bool
	pid       uint32
}

// Listen connects and starts listening; the first connection must succeed.
func Listen(ctx context.Context, opts ListenerOptions) (*Listener, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	conn, err := connectListen(ctx, opts.URL)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{opts: opts, cancel: cancel}
	l.setConn(conn)
	l.wg.Go(func() { l.run(lctx, conn) })
	return l, nil
}

func connectListen(ctx context.Context, url string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("change feed: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("change feed: LISTEN: %w", err)
	}
	return conn, nil
}

func (l *Listener) setConn(c *pgx.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connected = c != nil
	if c != nil {
		l.pid = c.PgConn().PID()
	}
}

// BackendPID is the server process of the listening connection (tests kill
// it to simulate a connection loss).
func (l *Listener) BackendPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}

// Connected reports whether the listener is connected now (for /readyz).
func (l *Listener) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

func (l *Listener) run(ctx context.Context, conn *pgx.Conn) {
	log := l.opts.Logger
	for {
		err := l.receive(ctx, conn)
		conn.Close(context.Background())
		l.setConn(nil)
		if ctx.Err() != nil {
			return
		}
		log.Warn("change feed: connection lost, reconnecting", "err", err)
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn, err = connectListen(cctx, l.opts.URL)
			cancel()
			if err == nil {
				break
			}
			log.Warn("change feed: reconnect failed", "err", err, "retry_in", (2 * wait).String())
		}
		l.setConn(conn)
		log.Info("change feed: reconnected; refreshing what may have changed meanwhile")
		if l.opts.OnResync != nil {
			l.opts.OnResync(ctx)
		}
	}
}

func (l *Listener) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c Change
		var raw struct {
			Table    string         `json:"table"`
			Op       string         `json:"op"`
			New      map[string]any `json:"new"`
			Old      map[string]any `json:"old"`
			Overflow bool           `json:"overflow"`
		}
		dec := json.NewDecoder(strings.NewReader(n.Payload))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			l.opts.Logger.Warn("change feed: bad payload", "payload", n.Payload, "err", err)
			continue
		}
		c = Change{Table: raw.Table, Op: raw.Op, New: raw.New, Old: raw.Old, Overflow: raw.Overflow}
		if l.opts.OnChange != nil {
			l.opts.OnChange(ctx, c)
		}
	}
}

// Close stops listening.
func (l *Listener) Close() error {
	l.cancel()
	l.wg.Wait()
	return nil
}
