package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The schema's migrations: migrations/NNNN_name.sql, numbered from 1 with
// no gap, embedded in the binary. Each runs once, in a transaction with the
// store's schema first on the search_path, and is recorded in
// schema_migrations. A released migration is never edited: a change of the
// tables is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in order. A malformed set is
// a bug of this binary, caught by the package's tests.
func loadMigrations() ([]migration, error) {
	paths, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, p := range paths {
		base := strings.TrimSuffix(path.Base(p), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || name == "" {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", p)
		}
		b, err := migrationFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %d (%s): migrations must be numbered 1, 2, 3... with no gap", m.version, m.name)
		}
	}
	return out, nil
}

// Latest is the schema version this kck needs: its last migration.
func Latest() int {
	ms, err := loadMigrations()
	if err != nil {
		panic(err) // the embedded files are part of the binary
	}
	return len(ms)
}

// Migrate creates cfg's schema when missing and applies the migrations it
// has not had, and returns the schema's version before and after. It is
// idempotent, and safe to run from several gateways at once (an advisory
// lock keyed by the schema lets one migrate at a time). A schema that a
// newer kck migrated past this binary's migrations is ErrSchemaNewer.
func Migrate(ctx context.Context, cfg Config) (from, to int, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, 0, err
	}
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, err
	}
	pc, err := cfg.poolConfig()
	if err != nil {
		return 0, 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres store %s: %w", where(pc), unavailable(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres store migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	steps := []string{
		`SELECT pg_advisory_xact_lock(` + strconv.FormatInt(migrateLockKey(cfg.Schema), 10) + `)`,
		`CREATE SCHEMA IF NOT EXISTS ` + schema,
		`CREATE TABLE IF NOT EXISTS ` + schema + `.schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`,
	}
	for _, st := range steps {
		if _, err := tx.Exec(ctx, st); err != nil {
			return 0, 0, fmt.Errorf("postgres store migrate %s: %s: %w", where(pc), firstLine(st), err)
		}
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.schema_migrations`).Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("postgres store migrate: %w", err)
	}
	if from > len(ms) {
		return from, from, fmt.Errorf("postgres store %s: schema %q is at migration %d, newer than this kck's %d: %w (run a kck at least as new, or its `kck migrate`)",
			where(pc), cfg.Schema, from, len(ms), ErrSchemaNewer)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+schema); err != nil {
		return 0, 0, fmt.Errorf("postgres store migrate: %w", err)
	}
	for _, m := range ms[from:] {
		// The simple protocol runs a file of several statements.
		if _, err := tx.Conn().PgConn().Exec(ctx, m.sql).ReadAll(); err != nil {
			return from, from, fmt.Errorf("postgres store migrate %s: migration %d (%s): %w", where(pc), m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return from, from, fmt.Errorf("postgres store migrate: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, from, fmt.Errorf("postgres store migrate %s: %w", where(pc), err)
	}
	return from, len(ms), nil
}

// migrateLockKey is the advisory lock of schema's migration: FNV-1a of a
// fixed prefix and the name, stable across releases.
func migrateLockKey(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("kck store migrate " + schema))
	return int64(h.Sum64())
}

// checkSchema refuses a schema that is missing, behind this kck's
// migrations, or ahead of them.
func (s *Store) checkSchema(ctx context.Context) error {
	schema := pgx.Identifier{s.cfg.Schema}.Sanitize()
	var v int
	s.reads.Add(1)
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.schema_migrations`).Scan(&v)
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg) && (pg.Code == "42P01" || pg.Code == "3F000"):
		return fmt.Errorf("postgres store %s: schema %q has no kck tables: %w (or kck serve --migrate)", s.where, s.cfg.Schema, ErrNotMigrated)
	case err != nil:
		return fmt.Errorf("postgres store %s: %w", s.where, unavailable(err))
	case v < Latest():
		return fmt.Errorf("postgres store %s: schema %q is at migration %d, this kck needs %d: %w (or kck serve --migrate)", s.where, s.cfg.Schema, v, Latest(), ErrNotMigrated)
	case v > Latest():
		return fmt.Errorf("postgres store %s: schema %q is at migration %d, newer than this kck's %d: %w (a newer `kck migrate` ran: run a kck at least as new)",
			s.where, s.cfg.Schema, v, Latest(), ErrSchemaNewer)
	}
	return nil
}

// DropSchema removes cfg's schema and everything in it (tests, benchmarks).
func DropSchema(ctx context.Context, cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	pc, err := cfg.poolConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return fmt.Errorf("postgres store %s: %w", where(pc), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{cfg.Schema}.Sanitize()+` CASCADE`)
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
