package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// With Config.Trace, each statement the store runs is a client span under
// the caller's, when the caller's is recorded.
func TestTraceStatements(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Config(t)
	cfg.Trace = true
	s, err := postgres.Open(ctx(t), cfg)
	require.NoError(t, err)
	defer s.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))

	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "k/1", Value: []byte(`1`), Version: 1, ComputedAt: time.Now()}), "not traced: no span")
	sctx, parent := tp.Tracer("test").Start(ctx(t), "read")
	_, err = s.Get(sctx, "k/1")
	require.NoError(t, err)
	parent.End()
	var children int
	for _, sp := range rec.Ended() {
		if sp.Name() == "read" {
			continue
		}
		children++
		assert.Equal(t, "SELECT", sp.Name())
		assert.Equal(t, parent.SpanContext().SpanID(), sp.Parent().SpanID())
		for _, kv := range sp.Attributes() {
			if kv.Key == "db.system.name" {
				assert.Equal(t, "postgresql", kv.Value.String())
			}
		}
	}
	assert.Equal(t, 1, children, "one statement, one span; the untraced write made none")
}
