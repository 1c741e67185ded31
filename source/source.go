// Package source is KCK's access to PostgreSQL, where the source data of
// SQL products lives: the connection pool, and the change feed that tells
// the gateway which source rows changed (triggers that NOTIFY, and a
// listener that survives connection loss).
package source

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URLFromEnv returns KCK_POSTGRES_URL.
func URLFromEnv() string { return os.Getenv("KCK_POSTGRES_URL") }

// Open connects a pool and checks that the database answers. The error
// names the host and database, never the password.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad KCK_POSTGRES_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s:%d/%s does not answer: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// QueryCounter is a pgx tracer that counts the queries a pool runs, so that
// tests and benchmarks can show hits never reach the database.
type QueryCounter struct{ n atomic.Int64 }

// Count returns the queries started so far.
func (q *QueryCounter) Count() int64 { return q.n.Load() }

// TraceQueryStart counts a query.
func (q *QueryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

// TraceQueryEnd does nothing.
func (q *QueryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// OpenCounted is Open with a QueryCounter on every connection.
func OpenCounted(ctx context.Context, url string) (*pgxpool.Pool, *QueryCounter, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: bad URL: %w", err)
	}
	qc := &QueryCounter{}
	cfg.ConnConfig.Tracer = qc
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres %s/%s does not answer: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return pool, qc, nil
}
