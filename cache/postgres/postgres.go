// Package postgres is the cache.Store on PostgreSQL (Django KCK's store):
// the gateways of a cluster share one database, usually the one that
// already holds their source data, with no other server to run. It holds
// the values, the compute and job leases and the refresh queue (queue.go),
// and deletes what ran out in bounded batches (sweep.go).
//
// Tables, in a schema of their own (Config.Schema, default "kck"), created
// only by Migrate (`kck migrate`, or `kck serve --migrate`) from numbered
// migrations embedded in the binary (migrate.go); Open refuses a schema that
// is not migrated, or migrated by a newer kck:
//
//	cache_entries (key PRIMARY KEY, version, computed_at, stale_at, expires_at, codec, value)
//	leases        (name PRIMARY KEY, owner, expires_at)
//	refresh_queue ((queue, key) PRIMARY KEY, version, requests, ..., poisoned, done_at)
//	schema_migrations (version PRIMARY KEY, name, applied_at)
//
// Choices, and why:
//   - One statement per operation, each its own transaction: Get is one
//     indexed read; Put is one INSERT ... ON CONFLICT DO UPDATE ... WHERE
//     the stored version is lower, so the database decides "versions never
//     go backwards" on the row it has locked, whichever gateway writes last,
//     in one round trip (no read first, so no cache.NewPutter: it would save
//     nothing). Delete writes a tombstone (value NULL) at its version, so
//     that a computation that started before the deletion cannot bring the
//     key back; tombstones live TombstoneTTL, then the sweep removes them.
//   - Leases are rows with an expiry taken from the database's clock, so
//     gateways whose clocks differ still agree on when a lease ran out:
//     Acquire is one INSERT ... ON CONFLICT DO UPDATE ... WHERE the holder
//     is the same owner or the lease ran out, RETURNING the row when taken.
//     Release marks the row run out rather than deleting it, and Done marks
//     a queue row finished: a key refreshed again soon reuses its rows
//     (heap-only updates, nothing for vacuum to index-clean); the sweep
//     deletes them once KeepDone has passed.
//   - Only the primary keys are indexed. A refresh rewrites a row without
//     changing its key, so with free room on its page (fillfactor 70) the
//     new version is a heap-only tuple (HOT): no index entry is written,
//     and the page's dead versions are pruned as it is read, without
//     waiting for vacuum. An index on expires_at would make every refresh
//     of a product with a TTL a non-HOT update; the sweep walks the primary
//     key instead, in batches.
//   - The tables are logged (not UNLOGGED): a crash of the database keeps
//     them and a standby has them after a failover. An UNLOGGED
//     cache_entries writes no WAL, but a crash truncates it (every gateway
//     misses at once, a storm on the sources) and standbys never have it;
//     docs/postgres-store.md says how to choose it anyway. The refresh queue
//     must stay logged: its rows are requests that were acknowledged.
//   - Values of CompressAbove (1 KiB) or more are compressed with zstd in
//     the gateway (codec column), as the Cassandra store does: JSON shrinks
//     three to ten times, on the wire and on disk. The value column's
//     storage is EXTERNAL, so PostgreSQL moves a large value out of line
//     (TOAST) without trying to compress it again. A value over
//     MaxValueBytes (16 MiB of JSON by default) is refused with
//     ErrValueTooLarge, never truncated.
//   - Versions are bigint (microsecond timestamps, below 2^63); times are
//     timestamptz (microseconds), NULL for "never".
//   - Errors that say the database cannot serve now (refused, reset,
//     shutting down, no connection slot) are primers.ErrUnavailable, so the
//     edge answers 503 "retry later" (unavailable, one function).
//   - Every round trip is counted by kind (Ops): reads, writes, and LWTs
//     for the statements that lock a row to decide (leases, queue changes).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/zstd"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/tracing"
)

// Config configures the store. Zero values take the defaults noted.
type Config struct {
	// URL is the database (a pgx connection string; pool_max_conns and the
	// like are honoured). Required: `kck serve` defaults it to
	// --postgres-url, the source database.
	URL string
	// Schema holds the tables. Default "kck".
	Schema string
	// MaxConns bounds the pool when the URL does not (pool_max_conns).
	// Default 16: warming and refreshes run 16 to 32 keys at once, each
	// waiting on a round trip.
	MaxConns int32
	// MaxValueBytes is the largest value stored, as the product encodes it
	// (JSON, before compression); a larger one is refused with
	// ErrValueTooLarge. Default 16 MiB; PostgreSQL's own bound is 1 GB.
	MaxValueBytes int
	// CompressAbove is the value size from which values are compressed.
	// Default 1 KiB; negative disables compression.
	CompressAbove int
	// TombstoneTTL is how long a deletion's version is kept. It must
	// exceed the longest primer run. Default 10 minutes.
	TombstoneTTL time.Duration
	// KeepDone is how long a released lease and a finished queue row are
	// kept before the sweep deletes them: a key refreshed again within it
	// reuses its rows with heap-only updates instead of inserting new ones
	// (and leaving dead ones to vacuum). Default 10 minutes.
	KeepDone time.Duration
	// SweepInterval is how often one gateway of the cluster deletes what
	// ran out (see Sweep). Default 1 minute.
	SweepInterval time.Duration
	// SweepBatch is the rows one sweep statement examines; SweepMaxRows
	// bounds the rows of each table one Sweep examines (it goes on where it
	// stopped the next time). Defaults 1,000 and 100,000.
	SweepBatch, SweepMaxRows int
	// Trace records each statement as a span of the read or write that
	// made it, in a sampled trace (tracing.PgxTracer). Default off.
	Trace bool
}

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Schema == "" {
		c.Schema = "kck"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 16
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = 16 << 20
	}
	if c.CompressAbove == 0 {
		c.CompressAbove = 1 << 10
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 10 * time.Minute
	}
	if c.KeepDone == 0 {
		c.KeepDone = 10 * time.Minute
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Minute
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = 1000
	}
	if c.SweepMaxRows == 0 {
		c.SweepMaxRows = 100_000
	}
	return c
}

// Errors that waiting would not cure: callers tell them apart with
// errors.Is.
var (
	// ErrConfig: the Config is invalid.
	ErrConfig = errors.New("postgres store config")
	// ErrNotMigrated: the schema or its tables are missing, or older than
	// this kck needs.
	ErrNotMigrated = errors.New("run `kck migrate`")
	// ErrSchemaNewer: a newer kck migrated the schema past what this one
	// knows.
	ErrSchemaNewer = errors.New("schema migrated by a newer kck")
	// ErrValueTooLarge: a value over Config.MaxValueBytes, not stored.
	ErrValueTooLarge = errors.New("value too large for the store")
)

var validSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports a Config no store can be opened with (after
// WithDefaults).
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("no database URL"))
	} else if _, err := pgxpool.ParseConfig(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("bad database URL: %w", err))
	}
	if !validSchema.MatchString(c.Schema) {
		errs = append(errs, fmt.Errorf("bad schema name %q (lower-case letters, digits, underscore; not starting with a digit)", c.Schema))
	}
	if c.MaxValueBytes < 1 || c.MaxValueBytes > 1<<30-1 {
		errs = append(errs, fmt.Errorf("the largest value (%d bytes) must be between 1 byte and 1 GiB, PostgreSQL's bound on one value", c.MaxValueBytes))
	}
	if c.MaxConns < 1 || c.SweepBatch < 1 || c.SweepMaxRows < 1 {
		errs = append(errs, errors.New("MaxConns, SweepBatch and SweepMaxRows must be positive"))
	}
	if c.TombstoneTTL <= 0 || c.KeepDone <= 0 || c.SweepInterval <= 0 {
		errs = append(errs, errors.New("TombstoneTTL, KeepDone and SweepInterval must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// poolConfig parses the URL: the pool size defaults to MaxConns unless the
// URL names one.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: bad database URL: %w", ErrConfig, err)
	}
	if !strings.Contains(c.URL, "pool_max_conns") {
		pc.MaxConns = c.MaxConns
	}
	if c.Trace {
		pc.ConnConfig.Tracer = tracing.PgxTracer{}
	}
	return pc, nil
}

// where names the database for messages, never its password.
func where(pc *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
}

// Store is the PostgreSQL cache.Store. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	cfg   Config
	where string
	sql   statements
	enc   *zstd.Encoder
	dec   *zstd.Decoder

	reads, writes, lwts atomic.Uint64
	closeOnce           sync.Once

	// sweepAt holds, by table, the key the next Sweep starts after
	// (sweep.go).
	sweepMu sync.Mutex
	sweepAt map[string][]string
}

var (
	_ cache.Store     = (*Store)(nil)
	_ cache.Scanner   = (*Store)(nil)
	_ cache.OpCounter = (*Store)(nil)
)

// statements are the store's SQL, with the schema's tables named.
type statements struct {
	get, put, del, scan, acquire, release string
}

func newStatements(schema string) statements {
	entries := pgx.Identifier{schema, "cache_entries"}.Sanitize()
	leases := pgx.Identifier{schema, "leases"}.Sanitize()
	return statements{
		get: `SELECT version, computed_at, stale_at, expires_at, codec, value FROM ` + entries + ` WHERE key = $1 AND value IS NOT NULL`,
		put: `INSERT INTO ` + entries + ` AS e (key, version, computed_at, stale_at, expires_at, codec, value)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (key) DO UPDATE SET version = excluded.version, computed_at = excluded.computed_at,
				stale_at = excluded.stale_at, expires_at = excluded.expires_at, codec = excluded.codec, value = excluded.value
			WHERE e.version < excluded.version`,
		// A tombstone: value NULL at the deletion's version, until expires_at.
		del: `INSERT INTO ` + entries + ` AS e (key, version, expires_at, codec, value) VALUES ($1, $2, $3, 0, NULL)
			ON CONFLICT (key) DO UPDATE SET version = excluded.version, computed_at = NULL, stale_at = NULL,
				expires_at = excluded.expires_at, codec = 0, value = NULL
			WHERE e.version <= excluded.version`,
		scan: `SELECT key, version, computed_at, stale_at, expires_at, codec, value FROM ` + entries + `
			WHERE key > $1 AND value IS NOT NULL ORDER BY key LIMIT $2`,
		// The database's clock decides when a lease runs out, for every
		// gateway alike.
		acquire: `INSERT INTO ` + leases + ` AS l (name, owner, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE l.owner = excluded.owner OR l.expires_at <= clock_timestamp()
			RETURNING true`,
		// A released lease stays as a row that ran out, so that the next
		// Acquire of the name (the key's next refresh) is a heap-only
		// update rather than an insert; the sweep deletes it after KeepDone.
		release: `UPDATE ` + leases + ` SET owner = '', expires_at = clock_timestamp() WHERE name = $1 AND owner = $2`,
	}
}

// Open connects to the database and checks that the schema is migrated to
// the version this kck knows (run Migrate first). It fails, naming the
// database, when it does not answer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres store %s: %w", where(pc), err)
	}
	s := &Store{pool: pool, cfg: cfg, where: where(pc), sql: newStatements(cfg.Schema)}
	if err := s.checkSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	s.dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	return s, nil
}

// Close closes the pool. Closing again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.pool.Close()
		s.dec.Close()
	})
	return nil
}

// Pool is the store's connection pool (benchmarks compare against raw
// statements on it).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Config is the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Ops counts the round trips made so far, by kind.
func (s *Store) Ops() cache.StoreOps {
	return cache.StoreOps{Reads: s.reads.Load(), Writes: s.writes.Load(), LWTs: s.lwts.Load()}
}

const (
	codecRaw  = 0
	codecZstd = 1
)

// Get returns the live entry of key.
func (s *Store) Get(ctx context.Context, key string) (cache.Entry, error) {
	var (
		version                  int64
		computed, stale, expires pgtype.Timestamptz
		codec                    int16
		value                    []byte
	)
	s.reads.Add(1)
	err := s.pool.QueryRow(ctx, s.sql.get, key).Scan(&version, &computed, &stale, &expires, &codec, &value)
	if errors.Is(err, pgx.ErrNoRows) {
		return cache.Entry{}, fmt.Errorf("postgres get %q: %w", key, cache.ErrNotFound)
	}
	if err != nil {
		return cache.Entry{}, fmt.Errorf("postgres get %q: %w", key, unavailable(err))
	}
	e := cache.Entry{Key: key, Version: uint64(version), ComputedAt: fromTS(computed), StaleAt: fromTS(stale), ExpiresAt: fromTS(expires)}
	if e.Expired(time.Now()) {
		return cache.Entry{}, fmt.Errorf("postgres get %q: %w", key, cache.ErrNotFound)
	}
	if e.Value, err = s.decodeValue(value, codec); err != nil {
		return cache.Entry{}, fmt.Errorf("postgres get %q: %w", key, err)
	}
	return e, nil
}

func (s *Store) decodeValue(value []byte, codec int16) ([]byte, error) {
	switch codec {
	case codecRaw:
		return value, nil
	case codecZstd:
		v, err := s.dec.DecodeAll(value, nil)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return v, nil
	default:
		return nil, fmt.Errorf("unknown codec %d", codec)
	}
}

// scanPageSize is the rows per page of Scan: pages bound the memory a scan
// holds, whatever the table's size.
const scanPageSize = 500

// Scan calls fn for every live entry, in key order (byte order: the key
// column's collation is "C"), for Dump (cache.Scanner). It reads pages of
// scanPageSize rows after the last key seen, so a long scan holds no
// transaction open and sees each key at most once. Tombstones and entries
// past their hard expiry are skipped. A value that cannot be decoded fails
// the scan rather than leaving a hole in a backup. It stops at fn's first
// error and returns it.
func (s *Store) Scan(ctx context.Context, fn func(cache.Entry) error) error {
	after := ""
	for {
		now := time.Now()
		s.reads.Add(1)
		rows, err := s.pool.Query(ctx, s.sql.scan, after, scanPageSize)
		if err != nil {
			return fmt.Errorf("postgres scan: %w", unavailable(err))
		}
		var page []cache.Entry
		var codecs []int16
		for rows.Next() {
			var (
				e                        cache.Entry
				version                  int64
				computed, stale, expires pgtype.Timestamptz
				codec                    int16
			)
			if err := rows.Scan(&e.Key, &version, &computed, &stale, &expires, &codec, &e.Value); err != nil {
				rows.Close()
				return fmt.Errorf("postgres scan: %w", err)
			}
			e.Version, e.ComputedAt, e.StaleAt, e.ExpiresAt = uint64(version), fromTS(computed), fromTS(stale), fromTS(expires)
			page = append(page, e)
			codecs = append(codecs, codec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres scan: %w", unavailable(err))
		}
		for i, e := range page {
			if e.Expired(now) {
				continue
			}
			if e.Value, err = s.decodeValue(e.Value, codecs[i]); err != nil {
				return fmt.Errorf("postgres scan %q: %w", e.Key, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < scanPageSize {
			return nil
		}
		after = page[len(page)-1].Key
	}
}

// Put stores e unless the row holds an equal or higher version (a value or
// a deletion's): the database decides on the locked row, in one round trip.
func (s *Store) Put(ctx context.Context, e cache.Entry) error {
	if e.Version == 0 || e.Version > math.MaxInt64 {
		return fmt.Errorf("postgres put %q: version %d out of range", e.Key, e.Version)
	}
	if !e.ExpiresAt.IsZero() && !time.Now().Before(e.ExpiresAt) {
		return nil
	}
	if len(e.Value) > s.cfg.MaxValueBytes {
		return fmt.Errorf("postgres put %q: %w: %d bytes, over the limit of %d (--store-postgres-max-value-bytes): not stored",
			e.Key, ErrValueTooLarge, len(e.Value), s.cfg.MaxValueBytes)
	}
	value, codec := e.Value, int16(codecRaw)
	if value == nil {
		value = []byte{} // NULL is a deletion's mark
	}
	if s.cfg.CompressAbove >= 0 && len(value) >= s.cfg.CompressAbove {
		value, codec = s.enc.EncodeAll(value, make([]byte, 0, len(value)/4)), codecZstd
	}
	s.writes.Add(1)
	_, err := s.pool.Exec(ctx, s.sql.put, e.Key, int64(e.Version), toTS(e.ComputedAt), toTS(e.StaleAt), toTS(e.ExpiresAt), codec, value)
	if err != nil {
		return fmt.Errorf("postgres put %q: %w", e.Key, unavailable(err))
	}
	return nil
}

// Delete writes a tombstone at version: it removes an entry of a lower or
// equal version and keeps later Puts of such versions out, for
// TombstoneTTL; a newer entry stays.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if version > math.MaxInt64 {
		return fmt.Errorf("postgres delete %q: version %d out of range", key, version)
	}
	s.writes.Add(1)
	_, err := s.pool.Exec(ctx, s.sql.del, key, int64(version), time.Now().Add(s.cfg.TombstoneTTL))
	if err != nil {
		return fmt.Errorf("postgres delete %q: %w", key, unavailable(err))
	}
	return nil
}

// Acquire takes lease name for owner for ttl, or extends it when owner
// holds it; it reports whether owner holds it now.
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	s.lwts.Add(1)
	var got bool
	err := s.pool.QueryRow(ctx, s.sql.acquire, name, owner, ttl.Microseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres acquire %q: %w", name, unavailable(err))
	}
	return got, nil
}

// Release gives up a lease held by owner.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	s.lwts.Add(1)
	if _, err := s.pool.Exec(ctx, s.sql.release, name, owner); err != nil {
		return fmt.Errorf("postgres release %q: %w", name, unavailable(err))
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	s.reads.Add(1)
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres store %s: %w", s.where, unavailable(err))
	}
	return nil
}

// unavailable translates the driver's errors into the project's: a
// database that cannot serve now (refused, reset, shutting down, out of
// connection slots) is primers.ErrUnavailable, so the edge answers 503
// "retry later"; missing tables are ErrNotMigrated. The caller's own
// cancellation or deadline, and any other error, are returned as they are.
func unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "42P01" || pg.Code == "3F000": // undefined table, schema
			return fmt.Errorf("%w: %w", ErrNotMigrated, err)
		case strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57P") || pg.Code == "53300":
			// Class 08: connection exception; 57P01-03: shutting down,
			// crashed, starting; 53300: no connection slot free.
			return primers.Unavailable("the store", err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return primers.Unavailable("the store", err)
	}
	return err
}

// toTS is t as a timestamptz, NULL for the zero time ("never").
func toTS(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func fromTS(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return ts.Time.UTC()
}
