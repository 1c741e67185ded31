package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// A gateway with the console, on a real embedded store, over real HTTP,
// with the demo products, its scheduler (warming, refresh, the queue
// worker) and the queue in the store.
type env struct {
	url     string
	store   cache.Store
	cache   *cache.Cache
	queue   queue.Store
	sched   *scheduler.Scheduler
	metrics *prometheus.Registry
	logs    *logs
	secret  []byte
}

type envOpts struct {
	auth bool
	// store, when set, is the gateway's store (two gateways in one process
	// sharing an embedded store, or each with its own Cassandra session);
	// default a new embedded store.
	store cache.Store
	// noScheduler leaves warming and the worker out.
	noScheduler bool
	// maxKeys bounds the keys of one action (admin.Options.MaxKeys).
	maxKeys int
	// bus, when set, is the cluster's change bus (gateways sharing a
	// store share it, with cluster as their name).
	bus     *natstest.Server
	cluster string
}

var secret = []byte("0123456789abcdef0123456789abcdef-admin")

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{metrics: prometheus.NewRegistry(), logs: &logs{}, secret: secret}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	var err error
	e.store = o.store
	if e.store == nil {
		bs, err := bolt.Open(t.TempDir(), bolt.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = bs.Close() })
		e.store = bs
	}
	ds := demo.NewDataset()
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, ds))
	// A product whose values are past their target as soon as computed,
	// declaring a source table and a refresh rule as SQL products do.
	reg.MustRegister(primers.Product{Name: "pulse", Params: []primers.Param{{Name: "n", Kind: primers.Int}}, FreshnessTarget: time.Nanosecond,
		Sources: []primers.Source{{Table: "beats", Columns: []string{"n"}}}, AfterPrimes: []string{"author/:n"},
		Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { return n, nil })})
	copts := cache.Options{Registry: reg, Store: e.store, Registerer: e.metrics, Logger: log}
	ao := admin.Options{Gatherer: e.metrics, Open: !o.auth, Addr: "test", Logger: log, HeartbeatInterval: 100 * time.Millisecond, MaxKeys: o.maxKeys}
	if o.bus != nil {
		copts.Owner = cache.NewOwner()
		b := natstest.Bus(t, o.bus, o.cluster, copts.Owner)
		copts.Bus, ao.Roster = b, b
	}
	e.cache, err = cache.New(copts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	ao.Cache = e.cache
	var bq queue.Store
	switch st := e.store.(type) {
	case *bolt.Store:
		bq, err = st.Queue(queue.Config{})
	case *cassandra.Store:
		bq, err = st.Queue(queue.Config{})
	}
	require.NoError(t, err)
	e.queue, ao.Queue = bq, bq
	if !o.noScheduler {
		w, err := queue.NewWorker(queue.WorkerOptions{Queue: bq, Cache: e.cache, Registerer: e.metrics, Logger: log})
		require.NoError(t, err)
		e.sched, err = scheduler.New(scheduler.Options{Cache: e.cache, Queue: bq, Worker: w, Registerer: e.metrics, Logger: log, DrainInterval: 50 * time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, e.sched.Start())
		t.Cleanup(func() { _ = e.sched.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, e.sched.WaitReady(ctx))
		ao.Plans = e.sched.Plans
		ao.Warm = func(ctx context.Context, product string) (scheduler.WarmReport, error) {
			return e.sched.Warm(ctx, product)
		}
	}
	console, err := admin.New(ao)
	require.NoError(t, err)
	require.NoError(t, console.Start())
	t.Cleanup(func() { _ = console.Close() })
	gopts := gateway.Options{Cache: e.cache, Logger: log, Registerer: e.metrics, Gatherer: e.metrics, Admin: console}
	if o.auth {
		v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, Logger: log})
		require.NoError(t, err)
		t.Cleanup(v.Close)
		gopts.Auth = v
	}
	gw, err := gateway.New(gopts)
	require.NoError(t, err)
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

func (e *env) token(t *testing.T, sub, scope string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "scope": scope, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(e.secret)
	require.NoError(t, err)
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

// do sends a request; body, when not empty, is posted as JSON.
func (e *env) do(t *testing.T, method, path, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: time.Minute}
	resp, err := cl.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

func (e *env) overview(t *testing.T, hdr ...string) admin.Overview {
	t.Helper()
	r := e.do(t, "GET", "/admin/api/overview", "", hdr...)
	require.Equal(t, 200, r.status, string(r.body))
	var o admin.Overview
	r.json(t, &o)
	return o
}

func product(t *testing.T, o admin.Overview, name string) admin.Product {
	t.Helper()
	for _, p := range o.Products {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no product %s in the overview", name)
	return admin.Product{}
}

// logs keeps what the gateway logged.
type logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logs) lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

func body(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}
