// Package backend opens where products are stored: the embedded bbolt file,
// an Apache Cassandra cluster or a PostgreSQL database. A Backend gives the
// store the cache reads and writes, the scanner that lists entries (dump,
// key prefixes) and the refresh queue, so that no caller asks which kind it
// has. (Gateways sharing a store keep coherent over a change bus,
// cache.Bus, which the caller opens beside it.)
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/queue"
)

// Kinds of backend.
const (
	Embedded  = "embedded"
	Cassandra = "cassandra"
	Postgres  = "postgres"
)

// Backend is an opened store with everything that lives in it.
type Backend interface {
	// Store is what the cache reads and writes.
	Store() cache.Store
	Scanner() cache.Scanner
	// Shared reports whether other gateways may use the store (they need
	// a change bus to stay coherent).
	Shared() bool
	// Name names the store's data for a cluster's bus subjects: the
	// keyspace (or schema) the gateways sharing it share.
	Name() string
	// Queue is the refresh queue in the store, shared by every gateway on
	// it.
	Queue(cfg queue.Config) (queue.Store, error)
	Close() error
}

// Config says which backend, and where.
type Config struct {
	// Kind is Embedded, Cassandra or Postgres.
	Kind string
	// DataDir is the embedded store's directory.
	DataDir string
	// LockTimeout bounds the wait for the embedded store's file lock (a
	// running gateway holds it); 0 waits as long as it takes.
	LockTimeout time.Duration
	Cassandra   cassandra.Config
	// Postgres is the PostgreSQL store's database and schema; its URL is
	// required (callers default it to the source database).
	Postgres postgres.Config
	// Late: a cluster that does not answer at start is not an error: the
	// backend connects in the background (see cassandra.Late). Errors
	// waiting would not cure (ErrConfig, cassandra.ErrNotMigrated) still
	// fail Open.
	Late bool
	// Migrate creates the keyspace and tables (with Replication), or the
	// PostgreSQL schema and its tables, before the store opens. With Late,
	// a cluster that does not answer is migrated once it does, before the
	// store connects (PostgreSQL has no Late: a database that does not
	// answer at start fails Open).
	Migrate     bool
	Replication cassandra.Replication
	Logger      *slog.Logger
}

// ErrConfig is a Config no backend opens with: a usage error. Check's
// errors are ErrConfig (errors.Is) and say only what is wrong.
var ErrConfig = errors.New("backend config")

type configError string

func (e configError) Error() string        { return string(e) }
func (e configError) Is(target error) bool { return target == ErrConfig }

// Check reports a Config no backend can be opened with.
func (c Config) Check() error {
	_, amErr := cassandra.ParseAddressMap(c.Cassandra.AddressMap)
	pg := c.Postgres.WithDefaults()
	switch {
	case c.Kind != Embedded && c.Kind != Cassandra && c.Kind != Postgres:
		return configError(fmt.Sprintf("--store must be embedded, cassandra or postgres, not %q", c.Kind))
	case c.Kind == Cassandra && len(c.Cassandra.Hosts) == 0:
		return configError("--store cassandra needs --cassandra-hosts or KCK_CASSANDRA_HOSTS")
	case c.Kind == Cassandra && amErr != nil:
		return configError("--cassandra-address-map (KCK_CASSANDRA_ADDRESS_MAP): " + amErr.Error())
	case c.Kind == Postgres && c.Postgres.URL == "":
		return configError("--store postgres needs --store-postgres-url or --postgres-url (KCK_STORE_POSTGRES_URL, KCK_POSTGRES_URL)")
	case c.Kind == Postgres && pg.Validate() != nil:
		// Validate's errors name what is wrong: the URL, the schema's name,
		// the largest value.
		msg := strings.TrimPrefix(pg.Validate().Error(), postgres.ErrConfig.Error()+": ")
		return configError("--store postgres (--store-postgres-url, --store-postgres-schema, --store-postgres-max-value-bytes): " + msg)
	}
	return nil
}

// Open opens the backend cfg names.
func Open(ctx context.Context, cfg Config) (Backend, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Kind == Embedded {
		s, err := bolt.Open(cfg.DataDir, bolt.Options{OpenTimeout: cfg.LockTimeout})
		if err != nil {
			return nil, err
		}
		return &backend[*bolt.Store]{s: s, name: embeddedName(cfg.DataDir), queue: func(q queue.Config) (queue.Store, error) { return s.Queue(q) }}, nil
	}
	if cfg.Kind == Postgres {
		return openPostgres(ctx, cfg)
	}
	var prepare func(context.Context) error
	if cfg.Migrate {
		prepare = func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return cassandra.Migrate(ctx, cfg.Cassandra, cfg.Replication)
		}
	}
	err := error(nil)
	if prepare != nil {
		err = prepare(ctx)
	}
	if err == nil {
		var s *cassandra.Store
		if s, err = cassandra.Open(ctx, cfg.Cassandra); err == nil {
			return &backend[*cassandra.Store]{s: s, shared: true, name: cfg.Cassandra.WithDefaults().Keyspace, queue: func(q queue.Config) (queue.Store, error) { return s.Queue(q) }}, nil
		}
	}
	if !cfg.Late || errors.Is(err, cassandra.ErrNotMigrated) || errors.Is(err, cassandra.ErrConfig) {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Error("cassandra unreachable at start: serving without a store until it answers; /readyz fails meanwhile",
		"hosts", strings.Join(cfg.Cassandra.Hosts, ","), "err", err)
	l := cassandra.OpenLate(cfg.Cassandra, log, prepare)
	return &backend[*cassandra.Late]{s: l, shared: true, name: cfg.Cassandra.WithDefaults().Keyspace, queue: func(q queue.Config) (queue.Store, error) { return l.Queue(q), nil }}, nil
}

// embeddedName names an embedded store: its host and directory, since each
// is its own one-gateway cluster.
func embeddedName(dir string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return "embedded:" + host + ":" + dir
}

type store interface {
	cache.Store
	cache.Scanner
}

type backend[S store] struct {
	s      S
	shared bool
	name   string
	queue  func(queue.Config) (queue.Store, error)
}

func (b *backend[S]) Store() cache.Store                        { return b.s }
func (b *backend[S]) Scanner() cache.Scanner                    { return b.s }
func (b *backend[S]) Shared() bool                              { return b.shared }
func (b *backend[S]) Name() string                              { return b.name }
func (b *backend[S]) Queue(c queue.Config) (queue.Store, error) { return b.queue(c) }
func (b *backend[S]) Close() error                              { return b.s.Close() }

// Sweeper is a backend that one gateway of the cluster must clear of what
// ran out now and then (PostgreSQL: expired entries, old tombstones, dead
// leases); the others expire what they hold themselves. The scheduler runs
// Sweep as a cluster-wide job every SweepInterval.
type Sweeper interface {
	Sweep(ctx context.Context) error
	SweepInterval() time.Duration
}

// openPostgres migrates when asked, then opens the PostgreSQL store.
func openPostgres(ctx context.Context, cfg Config) (Backend, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Migrate {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		from, to, err := postgres.Migrate(mctx, cfg.Postgres)
		cancel()
		if err != nil {
			return nil, err
		}
		if from != to {
			log.Info("postgres store migrated", "schema", cfg.Postgres.WithDefaults().Schema, "from", from, "to", to)
		}
	}
	s, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		return nil, err
	}
	return &pgBackend{
		backend: backend[*postgres.Store]{s: s, shared: true, name: pgName(cfg.Postgres),
			queue: func(q queue.Config) (queue.Store, error) { return s.Queue(q) }},
		log: log,
	}, nil
}

// pgName names a PostgreSQL store: its database and schema.
func pgName(c postgres.Config) string {
	c = c.WithDefaults()
	db := "postgres"
	if pc, err := pgxpool.ParseConfig(c.URL); err == nil && pc.ConnConfig.Database != "" {
		db = pc.ConnConfig.Database
	}
	return db + "_" + c.Schema
}

type pgBackend struct {
	backend[*postgres.Store]
	log *slog.Logger
}

var _ Sweeper = (*pgBackend)(nil)

// OpenBus is the store's own change bus (LISTEN/NOTIFY), for gateways
// with no NATS bus configured.
func (b *pgBackend) OpenBus(log *slog.Logger) cache.Bus { return b.s.Bus(log) }

func (b *pgBackend) SweepInterval() time.Duration { return b.s.Config().SweepInterval }

// Sweep runs one sweep and logs what it deleted.
func (b *pgBackend) Sweep(ctx context.Context) error {
	start := time.Now()
	sw, err := b.s.Sweep(ctx)
	if err != nil {
		return err
	}
	if sw.Entries > 0 || sw.Leases > 0 {
		b.log.Info("postgres store swept", "entries_deleted", sw.Entries, "leases_deleted", sw.Leases,
			"rows_examined", sw.Examined, "walk_wrapped", sw.Wrapped, "took", time.Since(start).String())
	}
	return nil
}
