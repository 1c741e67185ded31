package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/tracing"
)

func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracing.Scope)
}

// FollowOptions configure a Follower.
type FollowOptions struct {
	// URL of the database whose changes are followed.
	URL string
	// Name is the follower's position in the change log: the cluster's
	// name. The gateways of a cluster share it (one of them follows at a
	// time); clusters with their own stores over one database have their
	// own.
	Name   string
	Logger *slog.Logger
	// Registerer receives the follower's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Affected lists the keys a change makes stale (the SQL products'
	// sources: sqlproduct.Declarations.Affected).
	Affected func(Change) []string
	// Resync lists the keys to refresh when changes were lost: the
	// position had not moved for longer than Retention, so the log no
	// longer holds what it missed.
	Resync func(ctx context.Context) []string
	// Refresh has key refreshed because its source changed at asked, and
	// calls done with the outcome (cache.Cache.Dispatch). Required. ctx is
	// not the refresh's: it carries the span of the batch of changes that
	// asked (see TracerProvider), for the refresh's trace to link to.
	Refresh func(ctx context.Context, key string, asked time.Time, done func(error))
	// TracerProvider, when set, traces the follower: each batch of changes
	// read from the log is a trace (kck.source.changes, with the SQL that
	// read it), which the refreshes it asks for link to. Nil: none.
	TracerProvider trace.TracerProvider
	// Retention is how long the log keeps a change that no follower has
	// read. Default 24 h.
	Retention time.Duration
	// Poll is the longest the follower waits for a notification before it
	// looks anyway. Default 1 s.
	Poll time.Duration
	// CleanupEvery is how often the follower deletes what every follower
	// has read. Default 1 min.
	CleanupEvery time.Duration
	// RetryWait is how long the follower waits before it hands out again a
	// key whose refresh failed (then twice as long, up to 10 s, at most
	// refreshRetries times). Default 1 s.
	RetryWait time.Duration
}

// Follower reads the change log into refreshes of the products built on
// the changed rows. Run it where one gateway of the cluster leads (see
// package cluster).
type Follower struct {
	opts   FollowOptions
	tracer trace.Tracer // nil: no tracing

	changes, refreshes, failures prometheus.Counter
	lag                          prometheus.Histogram
	backlog                      prometheus.Gauge

	mu        sync.Mutex
	connected bool
	failed    bool // a connection failed or was lost since Run started
	running   bool
	pid       uint32
}

// The log is read in batches of readBatch rows; at most maxBacklog rows
// read have keys still being refreshed (past it, reading waits), and the
// position is written at most every positionEvery.
const (
	readBatch     = 1000
	maxBacklog    = 10000
	positionEvery = 200 * time.Millisecond
	deleteBatch   = 10000
)

// A key whose refresh failed is handed out again up to refreshRetries
// times, RetryWait apart, doubling up to retryMax (about 25 s in all by
// default): long enough to outlast a store or source blip, and to outlast
// this follower's lease when the store is down (the lease is in the store:
// the row is then read again by the next follower); short enough that a
// key that always fails (a primer error, a value the store refuses) does
// not hold the position back for long.
const (
	refreshRetries = 5
	retryMax       = 10 * time.Second
)

// NewFollower registers the follower's metrics; Run follows.
func NewFollower(opts FollowOptions) (*Follower, error) {
	if opts.Refresh == nil || opts.Name == "" {
		return nil, errors.New("source: FollowOptions.Refresh and Name are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Retention == 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.Poll == 0 {
		opts.Poll = time.Second
	}
	if opts.CleanupEvery == 0 {
		opts.CleanupEvery = time.Minute
	}
	if opts.RetryWait == 0 {
		opts.RetryWait = time.Second
	}
	f := &Follower{opts: opts,
		tracer:    tracerOf(opts.TracerProvider),
		changes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_changes_total", Help: "Source row changes read from the change log by this gateway (while it followed it)."}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refreshes_total", Help: "Products refreshed because their source changed, handed out by this gateway."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "kck_source_refresh_failures_total", Help: "Such refreshes that failed."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kck_source_fresh_lag_seconds",
			Help:    "From a source row change (the trigger's clock) to the products it affects refreshed and stored.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kck_source_backlog_rows", Help: "Rows of the change log read whose products are still being refreshed."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{f.changes, f.refreshes, f.failures, f.lag, f.backlog} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// Connected reports whether the follower is not known to be cut off: not
// following, connected, or still making its first connection (for
// /readyz: a gateway that does not follow is not less ready for it, and one
// that starts is ready as soon as the rest of it is).
func (f *Follower) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.running || f.connected || !f.failed
}

// Following reports whether Run runs.
func (f *Follower) Following() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// BackendPID is the server process of the follower's connection (tests
// kill it to cut the connection); 0 when not connected.
func (f *Follower) BackendPID() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid
}

func (f *Follower) setConn(c *pgx.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = f.failed || c == nil
	f.connected = c != nil
	f.pid = 0
	if c != nil {
		f.pid = c.PgConn().PID()
	}
}

// Run follows the log until ctx ends, reconnecting after a lost
// connection and going on from its position.
func (f *Follower) Run(ctx context.Context) {
	f.mu.Lock()
	f.running, f.failed = true, false
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running, f.connected, f.pid = false, false, 0
		f.mu.Unlock()
	}()
	log := f.opts.Logger
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := connectListen(ctx, f.opts.URL)
		if err != nil {
			f.setConn(nil)
		} else {
			wait = 100 * time.Millisecond
			f.setConn(conn)
			err = f.follow(ctx, conn)
			f.setConn(nil)
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("change log: connection lost; reconnecting, then going on from the position", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// FollowerApplicationName is the application_name of the follower's
// connection, unless the URL sets one: pg_stat_activity then tells the
// connections that follow the change log (one per cluster) from the
// gateways' pools.
const FollowerApplicationName = "kck follower"

func connectListen(ctx context.Context, url string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Parsed as the pool parses it: the pool's own settings in the URL
	// (pool_max_conns, ...) are not the server's, which would refuse them.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("change log: bad URL: %w", err)
	}
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set {
		pcfg.ConnConfig.RuntimeParams["application_name"] = FollowerApplicationName
	}
	conn, err := pgx.ConnectConfig(cctx, pcfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("change log: connect: %w", err)
	}
	if _, err := conn.Exec(cctx, "LISTEN "+Channel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("change log: LISTEN: %w", err)
	}
	return conn, nil
}

// pos is a place in the log: the (xid, id) of a row. xid is the text of
// an xid8.
type pos struct {
	xid string
	id  int64
}

// follow reads the log from the position until ctx ends or conn fails.
func (f *Follower) follow(ctx context.Context, conn *pgx.Conn) error {
	// Refreshes retried after a failure stop with this window: the next
	// one reads their rows again from the position.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read, err := f.start(ctx, conn)
	if err != nil {
		return err
	}
	w := newWindow(read)
	written := read
	lastWrite, lastCleanup := time.Now(), time.Time{}
	idle := f.opts.Poll
	for {
		if done := w.position(); done != written && time.Since(lastWrite) >= positionEvery {
			if _, err := conn.Exec(ctx, `UPDATE kck_source_position SET xid = $2::xid8, id = $3, updated = now() WHERE follower = $1`, f.opts.Name, done.xid, done.id); err != nil {
				return fmt.Errorf("change log: write position: %w", err)
			}
			written, lastWrite = done, time.Now()
		}
		if time.Since(lastCleanup) >= f.opts.CleanupEvery {
			if err := f.cleanup(ctx, conn); err != nil {
				return err
			}
			lastCleanup = time.Now()
		}
		n := 0
		if w.room() {
			if n, err = f.readBatch(ctx, conn, w); err != nil {
				return err
			}
		}
		if n == readBatch {
			continue
		}
		// Nothing more to read now: wait for a notification, the backlog
		// to move, or the poll. Committed rows held back behind an older
		// transaction still open (the snapshot's xmin: one in any database
		// of the server) become readable without a notification of their
		// own when it ends: while there are some, look every 20 ms.
		var held bool
		end := w.end()
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kck_source_changes WHERE (xid, id) > ($1::xid8, $2))`,
			end.xid, end.id).Scan(&held); err != nil {
			return fmt.Errorf("change log: read: %w", err)
		}
		if held || !w.room() {
			idle = 20 * time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, idle)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			idle = 20 * time.Millisecond
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !held:
			idle = min(2*idle, f.opts.Poll)
		default:
			return fmt.Errorf("change log: wait: %w", err)
		}
	}
}

// start loads the position, or makes one at the log's head the first
// time. A position older than Retention has lost changes: resync.
func (f *Follower) start(ctx context.Context, conn *pgx.Conn) (pos, error) {
	var (
		p       pos
		updated time.Time
	)
	err := conn.QueryRow(ctx, `SELECT xid::text, id, updated FROM kck_source_position WHERE follower = $1`, f.opts.Name).Scan(&p.xid, &p.id, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// A cluster's first follower starts a little before the head:
		// gateways that started before it may have computed products
		// whose rows changed meanwhile.
		head, err := f.head(ctx, conn, firstLookBack)
		if err != nil {
			return pos{}, err
		}
		_, err = conn.Exec(ctx, `INSERT INTO kck_source_position (follower, xid, id) VALUES ($1, $2::xid8, $3) ON CONFLICT (follower) DO NOTHING`, f.opts.Name, head.xid, head.id)
		if err != nil {
			return pos{}, fmt.Errorf("change log: start position: %w", err)
		}
		f.opts.Logger.Info("change log: first start of this cluster: following from a minute before the log's head", "follower", f.opts.Name)
		return f.start(ctx, conn)
	case err != nil:
		return pos{}, fmt.Errorf("change log: read position (run kck migrate?): %w", err)
	}
	if age := time.Since(updated); age > f.opts.Retention {
		head, err := f.head(ctx, conn, 0)
		if err != nil {
			return pos{}, err
		}
		f.opts.Logger.Warn("change log: position older than the log keeps; refreshing every product built on a source table", "follower", f.opts.Name, "age", age.String())
		if f.opts.Resync != nil {
			now := time.Now()
			for _, k := range f.opts.Resync(ctx) {
				f.refresh(ctx, k, now, nil)
			}
		}
		if _, err := conn.Exec(ctx, `UPDATE kck_source_position SET xid = $2::xid8, id = $3, updated = now() WHERE follower = $1`, f.opts.Name, head.xid, head.id); err != nil {
			return pos{}, fmt.Errorf("change log: write position: %w", err)
		}
		return head, nil
	}
	f.opts.Logger.Info("change log: following", "follower", f.opts.Name, "from_xid", p.xid, "from_id", p.id)
	return p, nil
}

// firstLookBack is how far before the log's head a cluster's first
// follower starts.
const firstLookBack = time.Minute

// head is the last row no open transaction can still precede, among those
// recorded more than back ago.
func (f *Follower) head(ctx context.Context, conn *pgx.Conn, back time.Duration) (pos, error) {
	p := pos{xid: "0"}
	err := conn.QueryRow(ctx, `SELECT xid::text, id FROM kck_source_changes
		WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) AND at < clock_timestamp() - $1::interval
		ORDER BY xid DESC, id DESC LIMIT 1`, back.String()).Scan(&p.xid, &p.id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return pos{}, fmt.Errorf("change log: head: %w", err)
	}
	return p, nil
}

// readBatch reads the next rows after the window's end and hands their
// keys out.
func (f *Follower) readBatch(ctx context.Context, conn *pgx.Conn, w *window) (int, error) {
	from := w.end()
	start := time.Now()
	rows, err := conn.Query(ctx, `SELECT xid::text, id, at, tbl, op, new_keys, old_keys FROM kck_source_changes
		WHERE (xid, id) > ($1::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY xid, id LIMIT $3`, from.xid, from.id, readBatch)
	if err != nil {
		return 0, fmt.Errorf("change log: read: %w", err)
	}
	type row struct {
		p  pos
		at time.Time
		ch Change
	}
	var batch []row
	for rows.Next() {
		var (
			r              row
			newRaw, oldRaw []byte
		)
		if err := rows.Scan(&r.p.xid, &r.p.id, &r.at, &r.ch.Table, &r.ch.Op, &newRaw, &oldRaw); err != nil {
			rows.Close()
			return 0, fmt.Errorf("change log: read: %w", err)
		}
		r.ch.New, r.ch.Old = decodeKeys(newRaw), decodeKeys(oldRaw)
		batch = append(batch, r)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("change log: read: %w", err)
	}
	asked := time.Now() // after the rows committed: a run that starts later reads them
	if len(batch) == 0 {
		f.backlog.Set(float64(w.backlog())) // the last batch's refreshes may have finished since
		return 0, nil
	}
	// A batch read is a trace of its own, from the read on (most reads
	// find nothing, and make none); the refreshes it asks for link to it.
	rctx, span := tracing.Root(ctx, f.tracer, "kck.source.changes", trace.SpanContext{},
		trace.WithTimestamp(start), trace.WithAttributes(attribute.Int("kck.changes", len(batch))))
	defer span.End()
	for _, r := range batch {
		f.changes.Inc()
		var keys []string
		if f.opts.Affected != nil {
			keys = f.opts.Affected(r.ch)
		}
		slot := w.add(r.p, len(keys))
		at := r.at
		if span.IsRecording() && len(keys) > 0 {
			span.AddEvent("change", trace.WithAttributes(attribute.String("kck.table", r.ch.Table), attribute.String("kck.op", r.ch.Op),
				attribute.Int("kck.keys", len(keys))))
		}
		for _, k := range keys {
			f.refreshRetrying(rctx, k, asked, 0, func(err error) {
				if err == nil {
					f.lag.Observe(max(0, time.Since(at).Seconds()))
				}
				w.done(slot)
			})
		}
	}
	f.backlog.Set(float64(w.backlog()))
	return len(batch), nil
}

func (f *Follower) refresh(ctx context.Context, key string, asked time.Time, done func(error)) {
	f.opts.Refresh(ctx, key, asked, func(err error) {
		f.refreshes.Inc()
		if err != nil {
			f.failures.Inc()
			f.opts.Logger.Warn("refresh after a source change failed", "key", key, "err", err)
		}
		if done != nil {
			done(err)
		}
	})
}

// refreshRetrying hands key out, and again after a failure (see
// refreshRetries), then calls finished with the last outcome: a row
// counts as finished, and the position moves past it, only once its keys
// were refreshed and stored, or kept failing. Were a failed one counted,
// a change read while the store refused writes (cache.ErrNotStored) or
// the source was down would be lost: the store would keep the old value.
// When ctx ends first, finished is not called: the row stays unfinished,
// for the next follower to read again.
func (f *Follower) refreshRetrying(ctx context.Context, key string, asked time.Time, attempt int, finished func(error)) {
	f.opts.Refresh(ctx, key, asked, func(err error) {
		f.refreshes.Inc()
		if err == nil {
			finished(nil)
			return
		}
		f.failures.Inc()
		if ctx.Err() != nil {
			return
		}
		if attempt >= refreshRetries {
			f.opts.Logger.Warn("refresh after a source change failed; giving up on it", "key", key, "attempts", attempt+1, "err", err)
			finished(err)
			return
		}
		if attempt == 0 {
			f.opts.Logger.Warn("refresh after a source change failed; trying again", "key", key, "err", err)
		}
		wait := min(f.opts.RetryWait<<attempt, retryMax)
		time.AfterFunc(wait, func() { // does nothing once ctx ended
			if ctx.Err() == nil {
				f.refreshRetrying(ctx, key, asked, attempt+1, finished)
			}
		})
	})
}

func decodeKeys(raw []byte) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // ints stay exact for the products' parameters
	if dec.Decode(&m) != nil {
		return nil
	}
	return m
}

// cleanup deletes, in bounded batches, the rows every live follower has
// read and those older than Retention, and says this follower is alive.
func (f *Follower) cleanup(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `UPDATE kck_source_position SET updated = now() WHERE follower = $1`, f.opts.Name); err != nil {
		return fmt.Errorf("change log: position: %w", err)
	}
	var low pos
	err := conn.QueryRow(ctx, `SELECT xid::text, id FROM kck_source_position WHERE updated > now() - $1::interval
		ORDER BY xid, id LIMIT 1`, f.opts.Retention.String()).Scan(&low.xid, &low.id)
	if err != nil {
		return fmt.Errorf("change log: cleanup: %w", err)
	}
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM kck_source_changes WHERE ctid IN (SELECT ctid FROM kck_source_changes
			WHERE (xid, id) <= ($1::xid8, $2) ORDER BY xid, id LIMIT $3)`, []any{low.xid, low.id, deleteBatch}},
		{`DELETE FROM kck_source_changes WHERE ctid IN (SELECT ctid FROM kck_source_changes
			WHERE at < now() - $1::interval LIMIT $2)`, []any{f.opts.Retention.String(), deleteBatch}},
	} {
		for {
			tag, err := conn.Exec(ctx, stmt.sql, stmt.args...)
			if err != nil {
				return fmt.Errorf("change log: cleanup: %w", err)
			}
			if tag.RowsAffected() < deleteBatch {
				break
			}
		}
	}
	return nil
}

// window is the rows read whose keys are still being refreshed, in log
// order: the position written is the last row before the first unfinished
// one, so a follower that takes over reads again only what may not have
// been refreshed (at least once, never lost).
type window struct {
	mu       sync.Mutex
	finished pos    // every row up to here is finished
	rows     []slot // rows[head:] are in log order, from the first unfinished
	head     int
	first    int // sequence number of rows[head]
	last     pos // the last row read
}

type slot struct {
	p    pos
	left int
}

func newWindow(p pos) *window { return &window{finished: p, last: p} }

// add appends a row with n keys being refreshed and returns its sequence
// number for done.
func (w *window) add(p pos, n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = p
	w.rows = append(w.rows, slot{p: p, left: n})
	seq := w.first + len(w.rows) - 1 - w.head
	w.advance()
	return seq
}

func (w *window) done(seq int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := w.head + seq - w.first; i >= w.head && i < len(w.rows) {
		w.rows[i].left--
	}
	w.advance()
}

func (w *window) advance() {
	for w.head < len(w.rows) && w.rows[w.head].left <= 0 {
		w.finished = w.rows[w.head].p
		w.head++
		w.first++
	}
	if w.head > 0 && w.head >= len(w.rows)/2 { // amortised: copy rarely
		w.rows = append(w.rows[:0], w.rows[w.head:]...)
		w.head = 0
	}
}

func (w *window) position() pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

func (w *window) end() pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *window) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rows) - w.head
}

func (w *window) room() bool { return w.backlog() < maxBacklog }
