package nats_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	natsbus "github.com/kck-go/kck/cache/nats"
	"github.com/kck-go/kck/internal/natstest"
)

const wait = time.Minute

// changes collects what a Bus delivers.
type changes struct {
	mu      sync.Mutex
	got     []cache.Change
	lost    int
	resumed int
}

func (c *changes) handler() cache.BusHandler {
	return cache.BusHandler{
		Change:  func(ch cache.Change) { c.mu.Lock(); c.got = append(c.got, ch); c.mu.Unlock() },
		Lost:    func(error) { c.mu.Lock(); c.lost++; c.mu.Unlock() },
		Resumed: func() { c.mu.Lock(); c.resumed++; c.mu.Unlock() },
	}
}

func (c *changes) snapshot() ([]cache.Change, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cache.Change(nil), c.got...), c.lost, c.resumed
}

// An announcement reaches every other gateway of the cluster, in order,
// with its inline value; not the sender, and not another cluster.
func TestPublishReachesTheOthers(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	a, b, c := natstest.Bus(t, srv, cluster, "a"), natstest.Bus(t, srv, cluster, "b"), natstest.Bus(t, srv, cluster, "c")
	other := natstest.Bus(t, srv, cluster+"-other", "d")
	var onA, onB, onC, onOther changes
	for bus, ch := range map[*natsbus.Bus]*changes{a: &onA, b: &onB, c: &onC, other: &onOther} {
		require.NoError(t, bus.Subscribe(ch.handler()))
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	sent := []cache.Change{
		{Key: "k/1", Version: 1, Origin: "a", Seq: 1, At: at, Entry: &cache.Entry{Key: "k/1", Version: 1, Value: []byte(`[1]`), ComputedAt: at}},
		{Key: "k/2", Version: 2, Origin: "a", Seq: 2, At: at, Deleted: true},
	}
	for _, ch := range sent {
		require.NoError(t, a.Publish(ch))
	}
	for _, on := range []*changes{&onB, &onC} {
		require.Eventually(t, func() bool { got, _, _ := on.snapshot(); return len(got) == 2 }, wait, time.Millisecond)
		got, _, _ := on.snapshot()
		assert.Equal(t, sent, got)
	}
	got, _, _ := onA.snapshot()
	assert.Empty(t, got, "no echo")
	got, _, _ = onOther.snapshot()
	assert.Empty(t, got, "another cluster's subjects")
}

// A value that would pass the servers' payload limit travels without it.
func TestPublishDropsAValueTooLarge(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	a, b := natstest.Bus(t, srv, cluster, "a"), natstest.Bus(t, srv, cluster, "b")
	var onB changes
	require.NoError(t, b.Subscribe(onB.handler()))
	big := []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
	require.NoError(t, a.Publish(cache.Change{Key: "k/1", Version: 1, Origin: "a", Seq: 1, Entry: &cache.Entry{Key: "k/1", Version: 1, Value: big}}))
	require.Eventually(t, func() bool { got, _, _ := onB.snapshot(); return len(got) == 1 }, wait, time.Millisecond)
	got, _, _ := onB.snapshot()
	assert.Nil(t, got[0].Entry)
	assert.Equal(t, uint64(1), got[0].Version)
}

// An assignment goes to one other gateway; its outcome comes back, an
// error as a RemoteError; with nobody serving, ErrNoAssignee.
func TestAssign(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	leader := natstest.Bus(t, srv, cluster, "leader")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := leader.Assign(ctx, "k/1", time.Now())
	require.True(t, errors.Is(err, cache.ErrNoAssignee), "%v", err)
	require.NoError(t, leader.ServeAssignments(func(context.Context, string, time.Time, func(error)) {
		t.Error("the leader took its own assignment")
	}))

	var mu sync.Mutex
	took := map[string]int{}
	asked := time.Now().Truncate(time.Microsecond)
	for _, name := range []string{"w1", "w2"} {
		w := natstest.Bus(t, srv, cluster, name)
		require.NoError(t, w.ServeAssignments(func(ctx context.Context, key string, at time.Time, done func(error)) {
			assert.True(t, at.Equal(asked))
			assert.False(t, trace.SpanContextFromContext(ctx).IsValid(), "no trace sent, none received")
			mu.Lock()
			took[name]++
			mu.Unlock()
			if key == "bad/1" {
				done(errors.New("primer failed"))
				return
			}
			go done(nil)
		}))
	}
	for range 20 {
		require.NoError(t, leader.Assign(ctx, "k/1", asked))
	}
	err = leader.Assign(ctx, "bad/1", asked)
	var re *natsbus.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "primer failed", re.Msg)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 21, took["w1"]+took["w2"], "each assignment taken once")
}

// An assignment carries its sender's trace context (a traceparent
// header): the refresh on the gateway that takes it is a span of the
// sender's trace.
func TestAssignCarriesTheTrace(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	leader := natstest.Bus(t, srv, cluster, "leader")
	w := natstest.Bus(t, srv, cluster, "w")
	got := make(chan trace.SpanContext, 1)
	require.NoError(t, w.ServeAssignments(func(ctx context.Context, _ string, _ time.Time, done func(error)) {
		got <- trace.SpanContextFromContext(ctx)
		done(nil)
	}))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx, cancel := context.WithTimeout(trace.ContextWithSpanContext(context.Background(), sent), wait)
	defer cancel()
	require.NoError(t, leader.Assign(ctx, "k/1", time.Now()))
	sc := <-got
	assert.True(t, sc.IsRemote())
	assert.Equal(t, sent.TraceID(), sc.TraceID())
	assert.Equal(t, sent.SpanID(), sc.SpanID(), "the sender's span is the parent")
	assert.True(t, sc.IsSampled(), "the sampling decision travels too")
}

// Gather asks every other gateway and collects their answers.
func TestGather(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cluster := natstest.Cluster(t)
	buses := []*natsbus.Bus{natstest.Bus(t, srv, cluster, "a"), natstest.Bus(t, srv, cluster, "b"), natstest.Bus(t, srv, cluster, "c")}
	for i, b := range buses {
		name := string(rune('a' + i))
		require.NoError(t, b.Answer("who", func(q []byte) []byte { return append([]byte(name+":"), q...) }))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := buses[0].Gather(ctx, "who", []byte("?"))
	require.NoError(t, err)
	var names []string
	for _, g := range got {
		names = append(names, string(g))
	}
	assert.ElementsMatch(t, []string{"b:?", "c:?"}, names)
}

// The server goes away and comes back: the bus says so both times, and
// announcements flow again.
func TestLostAndResumed(t *testing.T) {
	t.Parallel()
	srv := natstest.Listen(t)
	cluster := natstest.Cluster(t)
	a, b := natstest.Bus(t, srv, cluster, "a"), natstest.Bus(t, srv, cluster, "b")
	var onB changes
	require.NoError(t, b.Subscribe(onB.handler()))
	srv.Stop()
	require.Eventually(t, func() bool { _, lost, _ := onB.snapshot(); return lost == 1 && !b.Connected() }, wait, time.Millisecond)
	srv.Restart(t)
	require.Eventually(t, func() bool { _, _, resumed := onB.snapshot(); return resumed == 1 && b.Connected() && a.Connected() }, wait, 10*time.Millisecond)
	require.NoError(t, a.Publish(cache.Change{Key: "k/1", Version: 1, Origin: "a", Seq: 1}))
	require.Eventually(t, func() bool { got, _, _ := onB.snapshot(); return len(got) == 1 }, wait, time.Millisecond)
}

// A server that is not there at start is an outage, not an error: the bus
// connects when it comes. A URL it cannot use is an error.
func TestOpen(t *testing.T) {
	t.Parallel()
	_, err := natsbus.Open(natsbus.Config{Cluster: "c", URL: "nats://127.0.0.1:1"})
	require.NoError(t, err)
	_, err = natsbus.Open(natsbus.Config{URL: "nats://127.0.0.1:1"})
	require.ErrorIs(t, err, natsbus.ErrConfig)
	_, err = natsbus.Open(natsbus.Config{Cluster: "c", URL: "nats://user:secret@[::1"})
	require.ErrorIs(t, err, natsbus.ErrConfig)
	require.NotContains(t, err.Error(), "secret")
}
