// Package source is KCK's access to PostgreSQL, where the source data of
// SQL products lives: the connection pool, and the change feed that tells
// the gateway which source rows changed (triggers that NOTIFY, and a
// listener that survives connection loss).
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/primers"
)

// URLFromEnv returns KCK_POSTGRES_URL.
func URLFromEnv() string { return os.Getenv("KCK_POSTGRES_URL") }

// Open connects a pool and checks that the database answers. The error
// names the host and database, never the password.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) { return OpenTraced(ctx, url, nil) }

// OpenTraced is Open with tracer on every connection of the pool (nil:
// none), such as tracing.PgxTracer: a primer's SQL is then a span of the
// primer's.
func OpenTraced(ctx context.Context, url string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad KCK_POSTGRES_URL: %w", err)
	}
	cfg.ConnConfig.Tracer = tracer
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

// Unavailable wraps err as primers.ErrUnavailable when it says the database
// cannot be reached or dropped the connection (refused, reset, shut down,
// terminated), so that a client is told to retry rather than that the
// server failed; any other error (SQL, constraint, the caller's deadline) is
// returned as it is.
func Unavailable(err error) error {
	if err == nil || !connectionLost(err) {
		return err
	}
	return primers.Unavailable("the source database", err)
}

func connectionLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, primers.ErrUnavailable) {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P01-03: the server is shutting
		// down, crashed or starting; 53300: no connection slot free.
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57P") || pg.Code == "53300"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, pgconn.ErrConnClosed)
}
