package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/primers"
)

// recorder is a tracer provider keeping every span ended, in memory (as a
// gateway's process would export them).
func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

func withTracer(tp trace.TracerProvider) func(*cache.Options) {
	return func(o *cache.Options) { o.TracerProvider = tp }
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// find is the first ended span named name with attribute key=value (any
// when key is "").
func find(rec *tracetest.SpanRecorder, name, key, value string) (sdktrace.ReadOnlySpan, bool) {
	for _, s := range rec.Ended() {
		if s.Name() == name && (key == "" || attr(s, key) == value) {
			return s, true
		}
	}
	return nil, false
}

func childOf(s, parent sdktrace.ReadOnlySpan) bool {
	return s.Parent().SpanID() == parent.SpanContext().SpanID() && s.SpanContext().TraceID() == parent.SpanContext().TraceID()
}

// A miss read in a recorded trace: the tier's lookup, the store's read,
// the lease, the primer under it and the store's write, each a span under
// the caller's; a hit is one span; a read in no recorded trace, none.
func TestTraceReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "p", Params: intParam, Primer: squarePrimer()})
	rec, tp := recorder()
	c := f.cache(t, withTracer(tp))

	_, err := c.Get(context.Background(), "p/2")
	require.NoError(t, err)
	assert.Empty(t, rec.Ended(), "no recorded span: nothing traced")

	ctx, op := tp.Tracer("test").Start(context.Background(), "op")
	_, err = c.Get(ctx, "p/1")
	require.NoError(t, err)
	_, err = c.Get(ctx, "p/1")
	require.NoError(t, err)
	op.End()
	root, _ := find(rec, "op", "", "")
	lease, ok := find(rec, "kck.lease", "", "")
	require.True(t, ok)
	assert.True(t, childOf(lease, root))
	primer, ok := find(rec, "kck.primer", "kck.key", "p/1")
	require.True(t, ok)
	assert.True(t, childOf(primer, lease), "the primer runs under the lease")
	put, ok := find(rec, "kck.cache.store.put", "kck.key", "p/1")
	require.True(t, ok)
	assert.True(t, childOf(put, lease))
	get, ok := find(rec, "kck.cache.store.get", "kck.hit", "false")
	require.True(t, ok)
	assert.True(t, childOf(get, root))
	var hits, misses int
	for _, s := range rec.Ended() {
		if s.Name() == "kck.cache.memory" {
			assert.True(t, childOf(s, root))
			if attr(s, "kck.hit") == "true" {
				hits++
			} else {
				misses++
			}
		}
	}
	assert.Equal(t, []int{1, 1}, []int{hits, misses}, "the miss, then the hit")
}

// A refresh of a product others are computed from: the dependents'
// refreshes are traces of their own, linked to it.
func TestTraceCascadeLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "base", Params: intParam, Primer: squarePrimer()})
	f.register(t, primers.Product{Name: "derived", Params: intParam, Primer: primers.Func1(func(ctx context.Context, n int64) (map[string]int64, error) {
		var b map[string]int64
		return b, primers.Read(ctx, fmt.Sprintf("base/%d", n), &b)
	})})
	rec, tp := recorder()
	c := f.cache(t, withTracer(tp))
	_, err := c.Get(context.Background(), "derived/3")
	require.NoError(t, err)

	ctx, op := tp.Tracer("test").Start(context.Background(), "update")
	_, err = c.Refresh(ctx, "base/3")
	require.NoError(t, err)
	op.End()
	var cascaded sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		s, ok := find(rec, "kck.refresh", "kck.key", "derived/3")
		cascaded = s
		return ok
	}, bound, time.Millisecond)
	assert.Equal(t, "dependency", attr(cascaded, "kck.trigger"))
	assert.False(t, cascaded.Parent().IsValid(), "a trace of its own")
	require.Len(t, cascaded.Links(), 1)
	assert.Equal(t, op.SpanContext().SpanID(), cascaded.Links()[0].SpanContext.SpanID(), "linked to the refresh that caused it")
}

// A source change handed to another gateway over NATS: the dispatch is a
// trace of its own linked to what caused it, and the other gateway's
// refresh is a span of that trace (the assignment carried it), as two
// processes would each export them.
func TestTraceDispatchAcrossGateways(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, primers.Product{Name: "p", Params: intParam, Primer: squarePrimer()})
	recA, tpA := recorder()
	recB, tpB := recorder()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	gw := func(owner string, tp trace.TracerProvider) *cache.Cache {
		return f.cache(t, func(o *cache.Options) {
			o.Owner, o.Bus, o.Clock, o.TracerProvider = owner, natstest.Bus(t, srv, cluster, owner), nil, tp
		})
	}
	leader, other := gw("a-"+cluster, tpA), gw("b-"+cluster, tpB)
	for _, c := range []*cache.Cache{leader, other} {
		_, err := c.Get(context.Background(), "p/1")
		require.NoError(t, err)
	}

	cctx, changes := tpA.Tracer("test").Start(context.Background(), "changes")
	done := make(chan error, 1)
	leader.Dispatch(cctx, "p/1", time.Now(), func(err error) { done <- err })
	require.NoError(t, <-done)
	changes.End()

	dispatch, ok := find(recA, "kck.dispatch", "kck.key", "p/1")
	require.True(t, ok)
	assert.False(t, dispatch.Parent().IsValid(), "a trace of its own")
	require.Len(t, dispatch.Links(), 1)
	assert.Equal(t, changes.SpanContext().SpanID(), dispatch.Links()[0].SpanContext.SpanID())
	assign, ok := find(recA, "kck.assign", "", "")
	require.True(t, ok)
	assert.True(t, childOf(assign, dispatch))
	var refresh sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		s, ok := find(recB, "kck.refresh", "kck.key", "p/1")
		refresh = s
		return ok
	}, bound, time.Millisecond)
	assert.True(t, childOf(refresh, assign), "the other gateway's refresh continues the dispatch's trace")
	assert.True(t, refresh.Parent().IsRemote())
	assert.Equal(t, trace.SpanKindConsumer, refresh.SpanKind())
	primer, ok := find(recB, "kck.primer", "kck.key", "p/1")
	require.True(t, ok)
	assert.True(t, childOf(primer, refresh))
	_, ranHere := find(recA, "kck.primer", "", "")
	assert.False(t, ranHere, "the leader ran no primer for it")
}
