package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// Each run of a job is a trace, and the refreshes a job asks for link to
// it (here through the queue, whose worker makes each refresh a trace);
// the queue's drain, which runs every second, is not one.
func TestJobRunsAreTraces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.decl = primers.Product{Refresh: primers.Every(200 * time.Millisecond), Warm: []string{"p/1"}}
	c := f.gateway(t, "gw")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q, err := f.store.Queue(queue.Config{})
	require.NoError(t, err)
	w, err := queue.NewWorker(queue.WorkerOptions{Queue: q, Cache: c, TracerProvider: tp})
	require.NoError(t, err)
	s := f.scheduler(t, scheduler.Options{Cache: c, Queue: q, Worker: w, DrainInterval: 50 * time.Millisecond, TracerProvider: tp})
	var mu sync.Mutex
	var inProcess trace.SpanContext
	require.NoError(t, s.Process("tick", primers.Every(100*time.Millisecond), func(ctx context.Context) error {
		mu.Lock()
		inProcess = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return nil
	}))
	require.NoError(t, s.Start())

	// A refresh the job queued, linked to one of the job's runs.
	require.Eventually(t, func() bool {
		jobs := map[trace.SpanID]bool{}
		for _, sp := range rec.Ended() {
			if sp.Name() == "kck.job refresh/p" {
				jobs[sp.SpanContext().SpanID()] = true
			}
		}
		for _, sp := range rec.Ended() {
			if sp.Name() == "kck.refresh" && len(sp.Links()) == 1 && jobs[sp.Links()[0].SpanContext.SpanID()] {
				return true
			}
		}
		return false
	}, 2*time.Minute, 10*time.Millisecond)
	tick := 0
	for _, sp := range rec.Ended() {
		assert.NotContains(t, sp.Name(), "queue/drain", "the drain is not traced")
		if sp.Name() == "kck.job tick" {
			tick++
			assert.False(t, sp.Parent().IsValid())
		}
	}
	assert.Positive(t, tick)
	mu.Lock()
	defer mu.Unlock()
	assert.True(t, inProcess.IsValid(), "a process runs in its job's span")
}
