package cassandra

import (
	"context"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/tracing"
)

// opCounter counts every request the store's session sends, attempts,
// retries and speculative executions included (they cost the cluster as
// much), by kind: a statement with an IF condition is a lightweight
// transaction (a Paxos round), another SELECT a read, anything else a
// write; a batch counts as one write.
type opCounter struct {
	cache.OpCounts
	kinds sync.Map // statement -> kind
	// trace: each request is also a span of the read or write that made
	// it, when that one is recorded (Config.Trace).
	trace bool
}

type opKind uint8

const (
	opRead opKind = iota
	opWrite
	opLWT
)

func kindOf(stmt string) opKind {
	s := strings.ToUpper(stmt)
	switch {
	case strings.Contains(s, " IF "):
		return opLWT
	case strings.HasPrefix(strings.TrimSpace(s), "SELECT"):
		return opRead
	}
	return opWrite
}

func (o *opCounter) ObserveQuery(ctx context.Context, q gocql.ObservedQuery) {
	if o.trace {
		traceRequest(ctx, q.Statement, q.Keyspace, q.Host, q.Attempt, q.Start, q.End, q.Err)
	}
	k, ok := o.kinds.Load(q.Statement)
	if !ok {
		k, _ = o.kinds.LoadOrStore(q.Statement, kindOf(q.Statement))
	}
	switch k.(opKind) {
	case opRead:
		o.Read(1)
	case opLWT:
		o.LWT(1)
	default:
		o.Write(1)
	}
}

func (o *opCounter) ObserveBatch(ctx context.Context, b gocql.ObservedBatch) {
	if o.trace {
		traceRequest(ctx, "BATCH "+strings.Join(b.Statements, "; "), b.Keyspace, b.Host, b.Attempt, b.Start, b.End, b.Err)
	}
	o.Write(1)
}

// traceRequest records one request the driver made (gocql's observers see
// it once it returned) as a client span under ctx's, when that one is
// recorded: the store's read, write or lease that sent it. The statement's
// text is recorded, never its values.
func traceRequest(ctx context.Context, stmt, keyspace string, host *gocql.HostInfo, attempt int, start, end time.Time, err error) {
	if !tracing.Recording(ctx) {
		return
	}
	name, _, _ := strings.Cut(strings.TrimSpace(stmt), " ")
	attrs := []attribute.KeyValue{semconv.DBSystemNameCassandra, semconv.DBQueryText(stmt), semconv.DBNamespace(keyspace),
		attribute.Int("kck.cassandra.attempt", attempt)}
	if host != nil {
		attrs = append(attrs, semconv.ServerAddress(host.ConnectAddress().String()), semconv.ServerPort(host.Port()))
	}
	_, span := tracing.Child(ctx, strings.ToUpper(name), trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
}

// Ops counts the store's requests (cache.OpCounter).
func (s *Store) Ops() cache.StoreOps { return s.ops.Ops() }
