package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/queue"
)

// metricsText returns the value of one series of /metrics, by its exact
// label set as Prometheus writes it (labels sorted by name).
func metricsText(t *testing.T, e *env, series string, hdr ...string) float64 {
	t.Helper()
	r := e.do(t, "GET", "/metrics", "", hdr...)
	require.Equal(t, 200, r.status)
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// The API's figures are /metrics' counters: read the same series both ways.
func TestOverviewMatchesMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	for _, k := range []string{"title_list/42", "title_list/42", "title_list/42", "author/7", "top_authors/3"} {
		r := e.do(t, "GET", "/fetch?key="+k, "")
		require.Equal(t, 200, r.status, string(r.body))
	}
	o := e.overview(t)
	tl := product(t, o, "title_list")
	assert.Equal(t, metricsText(t, e, `kck_product_reads_total{outcome="hit_memory",product="title_list"}`), tl.Reads.HitMemory)
	assert.Equal(t, metricsText(t, e, `kck_product_reads_total{outcome="miss",product="title_list"}`), tl.Reads.Miss)
	assert.Equal(t, 2.0, tl.Reads.HitMemory, "two hits after the miss")
	assert.Equal(t, 1.0, tl.Reads.Miss)
	require.NotNil(t, tl.Reads.MemoryRatio)
	assert.InDelta(t, 2.0/3, *tl.Reads.MemoryRatio, 1e-9)
	assert.Equal(t, metricsText(t, e, `kck_primer_runs_total{product="title_list"}`), tl.Primer.Runs)
	assert.Equal(t, uint64(metricsText(t, e, `kck_product_miss_duration_seconds_count{product="title_list"}`)), tl.Miss.Count)
	require.NotNil(t, tl.Miss.P50)
	require.NotNil(t, tl.Miss.P99)
	assert.LessOrEqual(t, *tl.Miss.P50, *tl.Miss.P99)
	assert.Equal(t, metricsText(t, e, `kck_product_values_held{product="title_list"}`), tl.Fresh.Instances)
	assert.Equal(t, 1.0, tl.Fresh.Instances)
	assert.Equal(t, metricsText(t, e, `kck_cache_reads_total{outcome="hit_memory"}`), o.Totals.Reads["hit_memory"])

	ta := product(t, o, "top_authors")
	assert.Equal(t, 120.0, ta.Policy.FreshnessTarget, "the demo's 2m target")
	assert.False(t, ta.Fresh.OverTarget)
	assert.Equal(t, "public", ta.Policy.Auth)
	as := product(t, o, "author_stats")
	assert.Equal(t, "scope stats:read; bind author_id=sub", as.Policy.Auth)
	require.NotNil(t, o.Queue)
	assert.Equal(t, 0, o.Queue.Depth)
	assert.True(t, o.Open)
}

// With the scheduler, products show their plans; a primer that reads
// another product draws an edge of the graph.
func TestPoliciesAndGraph(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	require.Equal(t, 200, e.do(t, "GET", "/fetch?key=author_stats/42", "").status)
	o := e.overview(t)
	ta := product(t, o, "top_authors")
	assert.Equal(t, "every 1m0s", ta.Policy.Refresh)
	assert.Equal(t, []string{"top_authors/10"}, ta.Policy.Warm)
	assert.Contains(t, product(t, o, "title_list").Policy.Domain, "author_ids")
	assert.Equal(t, []string{"title_list"}, product(t, o, "author_stats").ReadsFrom)
	assert.Equal(t, []string{"author_stats"}, product(t, o, "title_list").ReadBy)

	var g struct {
		Nodes []admin.GraphNode `json:"nodes"`
		Edges []admin.GraphEdge `json:"edges"`
	}
	r := e.do(t, "GET", "/admin/api/graph", "")
	require.Equal(t, 200, r.status)
	r.json(t, &g)
	assert.Contains(t, g.Edges, admin.GraphEdge{From: "title_list", To: "author_stats", Why: "reads"})
	assert.Len(t, g.Nodes, len(o.Products)+1, "the products and pulse's source table")

	// Sources and refresh rules come from the product's declaration.
	pulse := product(t, o, "pulse")
	assert.Equal(t, []string{"beats n"}, pulse.Policy.Sources)
	assert.Equal(t, []string{"author/:n"}, pulse.Policy.AfterPrimes)
	assert.Contains(t, g.Edges, admin.GraphEdge{From: "beats", To: "pulse", Why: "source"})
	assert.Contains(t, g.Edges, admin.GraphEdge{From: "author", To: "pulse", Why: "after_primes"})
}

// With auth on, the page and the API need kck:admin; a browser signs in
// once and its cookie stands for the token. Actions log who did them.
func TestAuthGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{auth: true, noScheduler: true})
	r := e.do(t, "GET", "/admin", "")
	require.Equal(t, 303, r.status, "a browser without a token is sent to sign in")
	assert.Equal(t, "/admin/login", r.header.Get("Location"))
	assert.Equal(t, 200, e.do(t, "GET", "/admin/login", "").status)
	assert.Equal(t, 401, e.do(t, "GET", "/admin/api/overview", "").status)
	assert.Equal(t, 401, e.do(t, "POST", "/admin/api/refresh", `{"key":"author/1"}`).status)
	reader := "Bearer " + e.token(t, "reader", "stats:read")
	assert.Equal(t, 403, e.do(t, "GET", "/admin/api/overview", "", "Authorization", reader).status)
	assert.Equal(t, 403, e.do(t, "GET", "/admin", "", "Authorization", reader).status)
	assert.Equal(t, 403, e.do(t, "GET", "/admin/assets/app.js", "", "Authorization", reader).status)
	assert.Equal(t, 401, e.do(t, "GET", "/admin/api/overview", "", "Authorization", "Bearer nope").status)

	op := e.token(t, "ops-1", "kck:admin")
	o := e.overview(t, "Authorization", "Bearer "+op)
	assert.False(t, o.Open)
	page := e.do(t, "GET", "/admin", "", "Authorization", "Bearer "+op)
	require.Equal(t, 200, page.status)
	assert.Contains(t, string(page.body), `data-access="closed"`)

	// Sign in: the cookie is HttpOnly, strict, scoped to /admin.
	login := e.do(t, "POST", "/admin/login", "", "Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, 400, login.status, "no token")
	req := "token=" + op
	login = e.doForm(t, "/admin/login", req)
	require.Equal(t, 303, login.status)
	ck := login.header.Get("Set-Cookie")
	assert.Contains(t, ck, "HttpOnly")
	assert.Contains(t, ck, "SameSite=Strict")
	assert.Contains(t, ck, "Path=/admin")
	cookie := "kck_admin_token=" + op
	assert.Equal(t, 200, e.do(t, "GET", "/admin/api/overview", "", "Cookie", cookie).status)
	assert.Equal(t, 200, e.do(t, "GET", "/admin", "", "Cookie", cookie).status)
	assert.Equal(t, 401, e.do(t, "GET", "/metrics", "", "Cookie", cookie).status, "the cookie counts under /admin only")

	r = e.do(t, "POST", "/admin/api/refresh", `{"key":"author/1"}`, "Cookie", cookie)
	require.Equal(t, 200, r.status, string(r.body))
	lines := e.logs.lines(`msg="admin action"`)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], "action=refresh")
	assert.Contains(t, lines[0], "by=sub:ops-1")
	assert.Contains(t, lines[0], `target="key author/1"`)
}

func (e *env) doForm(t *testing.T, path, form string) reply {
	t.Helper()
	return e.do(t, "POST", path, form, "Content-Type", "application/x-www-form-urlencoded")
}

// With auth off the page says it is open, and actions are logged as
// anonymous.
func TestOpenConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	page := e.do(t, "GET", "/admin", "")
	require.Equal(t, 200, page.status)
	assert.Contains(t, string(page.body), `data-access="open"`)
	assert.Contains(t, string(page.body), "Open: auth is off")
	assert.Contains(t, page.header.Get("Content-Security-Policy"), "default-src 'self'")
	assert.NotContains(t, string(page.body), "http://")
	assert.NotContains(t, string(page.body), "https://")
	for _, a := range []string{"app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"} {
		assert.Equal(t, 200, e.do(t, "GET", "/admin/assets/"+a, "").status, a)
	}
	assert.Equal(t, 404, e.do(t, "GET", "/admin/assets/LICENSE.uplot", "").status)
	assert.Equal(t, 404, e.do(t, "GET", "/admin/assets/index.html", "").status)
	assert.Equal(t, 404, e.do(t, "GET", "/admin/api/nosuch", "").status)
	assert.Equal(t, 301, e.do(t, "GET", "/admin/", "").status)
	require.Equal(t, 200, e.do(t, "GET", "/fetch?key=author/3", "").status)
	require.Equal(t, 200, e.do(t, "POST", "/admin/api/invalidate", `{"key":"author/3"}`).status)
	assert.Equal(t, 404, e.do(t, "GET", "/admin/api/key?key=author/3", "").status)
	lines := e.logs.lines(`msg="admin action"`)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], `by="anonymous (auth off)"`)
}

// Bad requests get a clear 4xx, never a 500.
// An action sent as a form or text/plain (what another site's page can make
// a browser send without a CORS preflight) is refused before it acts.
func TestActionsNeedJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	require.Equal(t, 200, e.do(t, "GET", "/fetch?key=top_authors/10", "").status)
	version := func() uint64 {
		var k admin.KeyInfo
		e.do(t, "GET", "/admin/api/key?key=top_authors/10", "").json(t, &k)
		return k.Version
	}
	before := version()
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		hdr := []string{"Content-Type", ct}
		r := e.do(t, "POST", "/admin/api/refresh", `{"key":"top_authors/10"}`, hdr...)
		assert.Equal(t, 415, r.status, "Content-Type %q: %s", ct, r.body)
	}
	assert.Equal(t, before, version(), "nothing was refreshed")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/admin/api/key", "", 400, "BAD_USER_INPUT"},
		{"GET", "/admin/api/key?key=title_list/x", "", 400, "BAD_USER_INPUT"},
		{"GET", "/admin/api/key?key=nosuch/1", "", 404, "NOT_FOUND"},
		{"GET", "/admin/api/key?key=title_list/999999", "", 404, "NOT_FOUND"},
		{"POST", "/admin/api/refresh", `not json`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/refresh", `{"key":"a/1","prefix":"a"}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/refresh", `{}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/refresh", `{"key":"title_list/x"}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/refresh", `{"key":"nosuch/1"}`, 404, "NOT_FOUND"},
		{"POST", "/admin/api/refresh", `{"keys":["a"]}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/invalidate", `{"product":"nosuch"}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/warm", `{"product":"author"}`, 400, "BAD_USER_INPUT"}, // no scheduler
		{"POST", "/admin/api/warm", `{"key":"author/1"}`, 400, "BAD_USER_INPUT"},
		{"POST", "/admin/api/queue/retry", `{"key":"title_list/1"}`, 404, "NOT_FOUND"},
		{"POST", "/admin/api/queue/remove", `{"prefix":"title_list/"}`, 400, "BAD_USER_INPUT"},
	} {
		r := e.do(t, tc.method, tc.path, tc.body)
		assert.Equal(t, tc.status, r.status, "%s %s %s: %s", tc.method, tc.path, tc.body, r.body)
		var er struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		r.json(t, &er)
		assert.Equal(t, tc.code, er.Error.Code, "%s %s %s", tc.method, tc.path, tc.body)
		assert.NotEmpty(t, er.Error.Message)
	}
}

// Refresh moves a key's version; invalidation by prefix needs the count
// confirmed, then removes every matching key.
func TestActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	for _, k := range []string{"title_list/4", "title_list/40", "title_list/41", "title_list/5", "author_stats/4"} {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	var before admin.KeyInfo
	r := e.do(t, "GET", "/admin/api/key?key=title_list/4", "")
	require.Equal(t, 200, r.status)
	r.json(t, &before)
	assert.True(t, before.InMemory)
	assert.Equal(t, []string{"author_stats/4"}, before.Dependents)
	assert.NotEmpty(t, before.Value)

	r = e.do(t, "POST", "/admin/api/refresh", `{"key":"title_list/4"}`)
	require.Equal(t, 200, r.status, string(r.body))
	var out admin.Outcome
	r.json(t, &out)
	assert.Greater(t, out.Versions["title_list/4"], before.Version)
	var after admin.KeyInfo
	e.do(t, "GET", "/admin/api/key?key=title_list/4", "").json(t, &after)
	assert.Equal(t, out.Versions["title_list/4"], after.Version)

	r = e.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/4"}`)
	require.Equal(t, 409, r.status, "three keys: confirm first")
	var conf struct {
		Keys   int      `json:"keys"`
		Sample []string `json:"sample"`
	}
	r.json(t, &conf)
	assert.Equal(t, 3, conf.Keys)
	assert.Equal(t, []string{"title_list/4", "title_list/40", "title_list/41"}, conf.Sample)
	assert.Equal(t, 409, e.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/4","confirm":2}`).status, "a count that is not the one shown")
	r = e.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/4","confirm":3}`)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &out)
	assert.Equal(t, 3, out.Done)
	for _, k := range []string{"title_list/40", "title_list/41"} {
		assert.Equal(t, 404, e.do(t, "GET", "/admin/api/key?key="+k, "").status, k)
	}
	// author_stats/4 reads title_list/4: invalidating it refreshes its
	// dependent, which computes it again, with a new version.
	require.Eventually(t, func() bool {
		var now admin.KeyInfo
		r := e.do(t, "GET", "/admin/api/key?key=title_list/4", "")
		if r.status == 404 {
			return true
		}
		r.json(t, &now)
		return now.Version > after.Version
	}, 2*time.Minute, 10*time.Millisecond)
	assert.Equal(t, 200, e.do(t, "GET", "/admin/api/key?key=title_list/5", "").status, "not under the prefix")

	r = e.do(t, "POST", "/admin/api/refresh", `{"prefix":"title_list/5"}`)
	require.Equal(t, 200, r.status, "one key needs no confirmation: %s", r.body)
}

// Warming a product asks for confirmation, then computes what it declares.
func TestWarmAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	r := e.do(t, "POST", "/admin/api/warm", `{"product":"top_authors"}`)
	require.Equal(t, 409, r.status, string(r.body))
	r = e.do(t, "POST", "/admin/api/warm", `{"product":"top_authors","confirm":1}`)
	require.Equal(t, 200, r.status, string(r.body))
	var out admin.Outcome
	r.json(t, &out)
	require.NotNil(t, out.Warmed)
	assert.Equal(t, 1, out.Warmed.Keys, "top_authors/10")
	assert.Equal(t, 0, out.Warmed.Failed)
}

// A poisoned queue entry is listed, retried (queued afresh) and removed.
func TestQueueActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	ctx := context.Background()
	require.NoError(t, e.queue.EnqueueMany(ctx, []string{"title_list/7", "title_list/8"}, time.Now()))
	items, err := e.queue.Claim(ctx, "test-worker", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1)
	it := items[0]
	require.NoError(t, e.queue.Release(ctx, "test-worker", it.Key, it.Version, queue.Permanent(errors.New("boom"))))

	o := e.overview(t)
	require.NotNil(t, o.Queue)
	assert.Equal(t, 1, o.Queue.Poisoned)
	assert.Equal(t, []string{it.Key}, o.Queue.PoisonedKeys)
	assert.Equal(t, 1, o.Queue.Depth)
	assert.Len(t, o.Queue.Next, 1)

	var info admin.KeyInfo
	require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+it.Key, "").status)
	e.do(t, "GET", "/admin/api/key?key="+it.Key, "").json(t, &info)
	require.NotNil(t, info.Queued)
	assert.True(t, info.Queued.Poisoned)
	assert.Contains(t, info.Queued.LastError, "boom")

	require.Equal(t, 200, e.do(t, "POST", "/admin/api/queue/retry", body(map[string]string{"key": it.Key})).status)
	o = e.overview(t)
	assert.Equal(t, 0, o.Queue.Poisoned)
	assert.Equal(t, 2, o.Queue.Depth)
	require.Equal(t, 200, e.do(t, "POST", "/admin/api/queue/remove", body(map[string]string{"key": it.Key})).status)
	assert.Equal(t, 404, e.do(t, "POST", "/admin/api/queue/remove", body(map[string]string{"key": it.Key})).status)
	assert.Equal(t, 1, e.overview(t).Queue.Depth)
}

// Two gateways on one store and one bus: each lists the other from its
// answer over the bus, and an invalidation by prefix on one drops the
// other's in-process copies.
func TestTwoGateways(t *testing.T) {
	t.Parallel()
	bus, cluster := natstest.Start(t), natstest.Cluster(t)
	a := newEnv(t, envOpts{noScheduler: true, bus: bus, cluster: cluster})
	b := newEnv(t, envOpts{noScheduler: true, store: a.store, bus: bus, cluster: cluster})
	var cl struct {
		Gateways []admin.Gateway `json:"gateways"`
	}
	require.Eventually(t, func() bool {
		a.do(t, "GET", "/admin/api/cluster", "").json(t, &cl)
		return len(cl.Gateways) == 2
	}, 2*time.Minute, 50*time.Millisecond, "a lists b")
	assert.True(t, cl.Gateways[0].Self)
	assert.Equal(t, b.cache.Owner(), cl.Gateways[1].Owner)
	assert.Equal(t, "test", cl.Gateways[1].Addr)

	require.Equal(t, 200, b.do(t, "GET", "/fetch?key=title_list/42", "").status)
	require.Equal(t, 200, b.do(t, "GET", "/fetch?key=title_list/43", "").status)
	var onB admin.KeyInfo
	b.do(t, "GET", "/admin/api/key?key=title_list/42", "").json(t, &onB)
	require.True(t, onB.InMemory)
	r := a.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/4"}`)
	require.Equal(t, 409, r.status, "a finds b's key in the store: %s", r.body)
	var conf struct {
		Keys int `json:"keys"`
	}
	r.json(t, &conf)
	require.Equal(t, 200, a.do(t, "POST", "/admin/api/invalidate", body(map[string]any{"prefix": "title_list/4", "confirm": conf.Keys})).status)
	require.Equal(t, 2, conf.Keys)
	require.Eventually(t, func() bool {
		return b.do(t, "GET", "/admin/api/key?key=title_list/42", "").status == 404 &&
			b.do(t, "GET", "/admin/api/key?key=title_list/43", "").status == 404
	}, 2*time.Minute, 20*time.Millisecond, "b dropped its copies")
}

// A dry run counts the keys an action would touch and touches none.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	for _, k := range []string{"title_list/1", "title_list/10", "title_list/2"} {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	var out admin.Outcome
	r := e.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/1","dryRun":true}`)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &out)
	assert.True(t, out.DryRun)
	assert.Equal(t, 2, out.Keys)
	assert.Equal(t, []string{"title_list/1", "title_list/10"}, out.Sample)
	r = e.do(t, "POST", "/admin/api/invalidate", `{"key":"title_list/2","dryRun":true}`)
	require.Equal(t, 200, r.status)
	r.json(t, &out)
	assert.Equal(t, 1, out.Keys)
	for _, k := range []string{"title_list/1", "title_list/10", "title_list/2"} {
		assert.Equal(t, 200, e.do(t, "GET", "/admin/api/key?key="+k, "").status, "still cached: %s", k)
	}
	assert.Empty(t, e.logs.lines(`msg="admin action"`), "a dry run is no action")
}

// An action matching more keys than MaxKeys is refused before it starts.
func TestMaxKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true, maxKeys: 2})
	for _, k := range []string{"title_list/1", "title_list/10", "title_list/11"} {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	r := e.do(t, "POST", "/admin/api/invalidate", `{"prefix":"title_list/1","confirm":3}`)
	require.Equal(t, 400, r.status, string(r.body))
	assert.Contains(t, string(r.body), "more than 2 keys")
	assert.Equal(t, 200, e.do(t, "GET", "/admin/api/key?key=title_list/1", "").status, "nothing was touched")
}

// Each heartbeat keeps a sample of the charts' counters: a page opened now
// draws the recent past at once.
func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	for range 5 {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key=author/9", "").status)
	}
	var h struct {
		Interval float64        `json:"intervalSeconds"`
		Samples  []admin.Sample `json:"samples"`
	}
	require.Eventually(t, func() bool {
		e.do(t, "GET", "/admin/api/history", "").json(t, &h)
		return len(h.Samples) >= 3 && h.Samples[len(h.Samples)-1].Hits >= 5
	}, 2*time.Minute, 50*time.Millisecond)
	assert.Equal(t, 0.1, h.Interval)
	for i := 1; i < len(h.Samples); i++ {
		assert.True(t, h.Samples[i].At.After(h.Samples[i-1].At), "oldest first")
		assert.GreaterOrEqual(t, h.Samples[i].Hits, h.Samples[i-1].Hits, "cumulative")
	}
	last := h.Samples[len(h.Samples)-1]
	require.NotNil(t, last.QueueDepth, "the worker's kck_queue_depth")
	assert.LessOrEqual(t, last.Hits, metricsText(t, e, `kck_cache_reads_total{outcome="hit_memory"}`)+metricsText(t, e, `kck_cache_reads_total{outcome="hit_store"}`))
}

// A product whose oldest value is older than its target is flagged, with
// the count of such values, as /metrics reports them.
func TestOverTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noScheduler: true})
	for _, k := range []string{"pulse/1", "pulse/2"} {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	p := product(t, e.overview(t), "pulse")
	assert.True(t, p.Fresh.OverTarget)
	assert.Equal(t, 2.0, p.Fresh.BeyondTarget)
	assert.Positive(t, p.Fresh.OldestAge)
	assert.Equal(t, metricsText(t, e, `kck_product_values_beyond_target{product="pulse"}`), p.Fresh.BeyondTarget)
	assert.False(t, product(t, e.overview(t), "top_authors").Fresh.OverTarget, "nothing held: nothing over")
}

// Per-product reads add up to the gateway's totals, boot warming included.
func TestProductReadsAddUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{}) // warms every author, title_list and top_authors/10
	for _, k := range []string{"title_list/1", "author/2", "author_stats/3", "top_authors/4"} {
		require.Equal(t, 200, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	// The scheduler's jobs read too (a domain's key, a dependent's
	// refresh reading title_list): a read between the gather of the two
	// series would show; a quiet moment comes soon.
	var o admin.Overview
	var sum admin.Reads
	require.Eventually(t, func() bool {
		o, sum = e.overview(t), admin.Reads{}
		for _, p := range o.Products {
			sum.HitMemory += p.Reads.HitMemory
			sum.HitStore += p.Reads.HitStore
			sum.Stale += p.Reads.Stale
			sum.Miss += p.Reads.Miss
		}
		return o.Totals.Reads["hit_memory"] == sum.HitMemory && o.Totals.Reads["hit_store"] == sum.HitStore &&
			o.Totals.Reads["stale"] == sum.Stale && o.Totals.Reads["miss"] == sum.Miss
	}, 2*time.Minute, 20*time.Millisecond, "per-product reads add up to the totals: %+v vs %v", sum, o.Totals.Reads)
	assert.Greater(t, sum.Miss, 600.0, "warming's misses count per product too")
}
