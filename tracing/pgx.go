package tracing

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// PgxTracer records each query of a pgx connection as a client span under
// the span of the query's context, when that one is recorded: a primer's
// SQL under its primer, the PostgreSQL store's statements under the read
// or write that made them. Any other query costs a context lookup. Set it
// as pgx.ConnConfig.Tracer.
//
// The span carries the statement's text (db.query.text), never its
// arguments: KCK's statements bind every value.
type PgxTracer struct{}

var _ pgx.QueryTracer = PgxTracer{}

// maxQueryText bounds the statement text a span carries.
const maxQueryText = 2048

// TraceQueryStart starts the query's span.
func (PgxTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !Recording(ctx) {
		return ctx
	}
	text := d.SQL
	if len(text) > maxQueryText {
		text = text[:maxQueryText]
	}
	cfg := conn.Config()
	ctx, _ = Child(ctx, queryName(d.SQL), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.DBSystemNamePostgreSQL, semconv.DBQueryText(text), semconv.DBNamespace(cfg.Database),
		semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port))))
	return ctx
}

// TraceQueryEnd ends it.
func (PgxTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	err := d.Err
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil // an answer, not a failure
	}
	if err == nil {
		span.SetAttributes(semconv.DBResponseReturnedRows(int(d.CommandTag.RowsAffected())))
	}
	End(span, err)
}

// queryName is a span name for a statement: its first keyword (SELECT,
// INSERT, WITH, ...), as OpenTelemetry's database conventions allow when
// no summary is at hand.
func queryName(sql string) string {
	sql = strings.TrimSpace(sql)
	for strings.HasPrefix(sql, "--") { // a leading comment line
		_, rest, ok := strings.Cut(sql, "\n")
		if !ok {
			return "SQL"
		}
		sql = strings.TrimSpace(rest)
	}
	end := strings.IndexAny(sql, " \t\n\r(;")
	if end < 0 {
		end = len(sql)
	}
	if end == 0 {
		return "SQL"
	}
	return strings.ToUpper(sql[:end])
}
