package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kck-go/kck/queue"
)

// A queued refresh is a trace of its own, linked to the trace of the
// request that queued it (kept in the queue's row), however much later
// and on whichever gateway it runs.
func TestQueuedRefreshLinksToWhatQueuedIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, job := tp.Tracer("test").Start(context.Background(), "kck.job refresh/p")
	require.NoError(t, f.q.EnqueueMany(ctx, []string{"p/1", "p/2"}, time.Now()))
	job.End()

	w := f.worker(t, f.gateway(t, "gw", nil), queue.WorkerOptions{TracerProvider: tp})
	rep, err := w.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, rep.Outcomes[queue.Refreshed])
	refreshes := 0
	for _, s := range rec.Ended() {
		if s.Name() != "kck.refresh" {
			continue
		}
		refreshes++
		assert.False(t, s.Parent().IsValid(), "a trace of its own")
		require.Len(t, s.Links(), 1)
		assert.Equal(t, job.SpanContext().TraceID(), s.Links()[0].SpanContext.TraceID())
		assert.Equal(t, job.SpanContext().SpanID(), s.Links()[0].SpanContext.SpanID())
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "kck.trigger":
				assert.Equal(t, "queue", kv.Value.String())
			case "kck.queue.outcome":
				assert.Equal(t, "refreshed", kv.Value.String())
			}
		}
	}
	assert.Equal(t, 2, refreshes)
}
