package cassandra_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kck-go/kck/cache"
)

// With Config.Trace, each request the store sends is a client span under
// the caller's, when the caller's is recorded: a read's SELECT, a write's
// version read and INSERT, a lease's lightweight transaction.
func TestTraceRequests(t *testing.T) {
	cfg := keyspace(t)
	cfg.Trace = true
	s := open(t, cfg)
	defer s.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	key := "trace/" + time.Now().Format(time.RFC3339Nano)

	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: key, Value: []byte(`1`), Version: 1, ComputedAt: time.Now()}), "not traced: no span")
	sctx, parent := tp.Tracer("test").Start(ctx(t), "read")
	_, err := s.Get(sctx, key)
	require.NoError(t, err)
	got, err := s.Acquire(sctx, "prime/"+key, "me", time.Minute)
	require.NoError(t, err)
	require.True(t, got)
	parent.End()

	var selects, lwts int
	for _, sp := range rec.Ended() {
		if sp.Name() == "read" {
			continue
		}
		assert.Equal(t, parent.SpanContext().SpanID(), sp.Parent().SpanID(), "%s is the read's child", sp.Name())
		attrs := map[string]string{}
		for _, kv := range sp.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		assert.Equal(t, "cassandra", attrs["db.system.name"])
		assert.Equal(t, cfg.Keyspace, attrs["db.namespace"])
		assert.NotContains(t, attrs["db.query.text"], key, "values are not recorded")
		switch sp.Name() {
		case "SELECT":
			selects++
		case "INSERT":
			lwts++ // the lease: INSERT ... IF NOT EXISTS
		}
	}
	assert.Positive(t, selects, "the read's SELECT")
	assert.Positive(t, lwts, "the lease's INSERT")
}
