//go:build faults

package faults

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxBodyBytes is gateway.Options.MaxBodyBytes's default: a body past it
// is refused with 413.
const maxBodyBytes = 1 << 20

// soakComplexity is the soak gateway's --max-complexity: with the default
// limits (1,000, and 30 aliases, 50 root fields) no document over this
// schema reaches the default, so the soak lowers it to refuse its "too
// complex" class; its good requests cost 11 at most.
const soakComplexity = 300

// heldOverrun is the share of due requests the generator may fail to send
// (overruns) and still be said to hold a rate: the calibration's bound and
// the report's.
const heldOverrun = 0.01

// maxHitRate measures the setup's maximum hit rate: a closed loop of
// workers, each sending the hot read again as soon as the last is
// answered, for d. It counts the answered 200s.
func maxHitRate(t *testing.T, g *gateway, workers int, d time.Duration) float64 {
	t.Helper()
	var ok, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				st, _, err := g.get(fmt.Sprintf("/fetch?key=title_list/%d", 1+rand.IntN(authors)))
				if err == nil && st == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "hot reads failed in the closed-loop burst")
	return float64(ok.Load()) / time.Since(t0).Seconds()
}

// malformed is one class of bad request and the answer the gateway gives it
// today (status and error code).
type malformed struct {
	class  string
	rate   float64
	status int
	code   string
	// refused is the kck_refused_total limit that counts the class, if any.
	refused string
	next    func(seq int64) call
}

func gqlBody(q string) string { return fmt.Sprintf(`{"query":%q}`, q) }

func aliases(n int, field string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d: %s ", i, field)
	}
	return b.String()
}

func malformedClasses(g *gateway) []malformed {
	get := func(paths ...string) func(int64) call {
		return func(seq int64) call { return call{gw: g, path: paths[seq%int64(len(paths))]} }
	}
	post := func(path, ctype string, bodies ...string) func(int64) call {
		return func(seq int64) call {
			return call{gw: g, method: http.MethodPost, path: path, ctype: ctype, body: bodies[seq%int64(len(bodies))]}
		}
	}
	const js = "application/json"
	over := strings.Repeat("x", maxBodyBytes+1024)
	deep := `{ product(key: "title_list/1") ` + strings.Repeat("{ a ", 13) + strings.Repeat("} ", 13) + "}"
	return []malformed{
		{class: "bad keys (/fetch)", rate: 5, status: 400, code: "BAD_USER_INPUT",
			next: get("/fetch?key=title_list/abc", "/fetch?key=title_list", "/fetch?key=title_list/1/2", "/fetch?key=%00%ff", "/fetch?key=", "/fetch")},
		{class: "unknown products (/fetch)", rate: 5, status: 404, code: "NOT_FOUND",
			next: get("/fetch?key=no_such/1", "/fetch?key=nothing_here/abc")},
		{class: "unknown updaters (/update)", rate: 5, status: 404, code: "NOT_FOUND",
			next: post("/update", js, `{"name":"no_such","input":{"a":1}}`)},
		{class: "bad JSON (/graphql)", rate: 5, status: 400, code: "BAD_USER_INPUT",
			next: post("/graphql", js, `{"query": `, `{"query": 42}`, `[1,`, `"x"`)},
		{class: "wrong types (/graphql)", rate: 5, status: 200, code: "GRAPHQL_VALIDATION_FAILED",
			next: post("/graphql", js, gqlBody(`{ titleList(authorId: "x") { title } }`), gqlBody(`{ noSuch { x } }`), gqlBody(`{ author(authorId: 1) }`))},
		{class: "bad JSON (/update)", rate: 5, status: 400, code: "BAD_USER_INPUT",
			next: post("/update", js, `{"name":`, `{"name":"add_title","input":{"authorId":1}} trailing`, `{"name":"add_title"}`, `[]`)},
		{class: "wrong types (/update)", rate: 5, status: 400, code: "BAD_USER_INPUT",
			next: post("/update", js, `{"name":"add_title","input":{"authorId":"x","title":1,"year":"y"}}`, `{"name":"add_title","input":{"authorId":1,"title":"t","year":"2000"}}`)},
		{class: "too deep (/graphql, depth 14 > 12)", rate: 5, status: 200, code: "LIMIT_EXCEEDED", refused: "depth",
			next: post("/graphql", js, gqlBody(deep))},
		{class: "too many aliases (/graphql, 31 > 30)", rate: 5, status: 200, code: "LIMIT_EXCEEDED", refused: "aliases",
			next: post("/graphql", js, gqlBody("{ "+aliases(31, "author(authorId: 1) { id }")+"}"))},
		{class: fmt.Sprintf("too complex (/graphql, 480 > %d)", soakComplexity), rate: 5, status: 200, code: "LIMIT_EXCEEDED", refused: "complexity",
			next: post("/graphql", js, gqlBody("{ "+aliases(30, "authorStats(authorId: 1) { authorId name titleCount firstYear lastYear totalSales }")+"}"))},
		{class: "oversized bodies (/graphql, 1 MiB + 1 KiB)", rate: 2, status: 413, code: "BAD_USER_INPUT",
			next: post("/graphql", js, `{"query":"`+over+`"}`)},
		{class: "oversized bodies (/update)", rate: 2, status: 413, code: "BAD_USER_INPUT",
			next: post("/update", js, `{"name":"add_title","input":{"authorId":1,"title":"`+over+`","year":2000}}`)},
	}
}

func (m malformed) stream() stream {
	return stream{class: m.class, rate: m.rate, next: m.next, ok: func(status int, body []byte) bool {
		if status != m.status {
			return false
		}
		got := errCode.FindSubmatch(body)
		return got != nil && string(got[1]) == m.code
	}}
}

// quiet closes the client's idle connections and returns the gateway's
// figures once its goroutines and FDs are at most limit (the connections'
// goroutines gone), or after 20 s whatever they are.
func quietStats(g *gateway, limit *procStats) procStats {
	client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		s := g.procStats()
		if limit == nil || (s.Goroutines <= limit.Goroutines && s.FDs <= limit.FDs) || time.Now().After(deadline) {
			return s
		}
	}
}

// The soak: 70% of the setup's maximum hit rate, open-loop, for suite.soak,
// with a refresh every second and a write every 100 ms; in its second part
// a load of malformed requests mixed in. Nothing good fails, hot reads keep
// their latency, every malformed request gets its error, and the gateway's
// RSS, goroutines and file descriptors stay flat.
func TestSoak(t *testing.T) {
	r := scenario(t, 90, "Soak with malformed requests mixed in",
		"0 errors at the hit rate the load generator holds, asked for 70% of the closed-loop maximum (Load held says what it held), with a refresh every second and writes every 100 ms; RSS, goroutines and file descriptors flat; malformed requests answered with their error and counted, good requests keep their latency")
	// The embedded store by default: the soak measures the gateway (its
	// hit path, bad input, flatness), not the store, and on a machine
	// whose cores the suite's Cassandra shares, the gateway's share of
	// them is its maximum hit rate. KCK_FAULTS_SOAK_STORE=cassandra runs it
	// on the suite's cluster.
	store := envOr("KCK_FAULTS_SOAK_STORE", "embedded")
	if store == "cassandra" {
		restoreCluster(t)
	}
	dsn := database(t)
	g := startGateway(t, "a", gatewayConfig{store: store, keyspace: keyspaceName(t), postgres: dsn,
		env: []string{fmt.Sprintf("KCK_MAX_COMPLEXITY=%d", soakComplexity)}})

	const workers, burst, pool = 16, 3 * time.Second, 32
	maxRate := maxHitRate(t, g, workers, burst)
	// The CI form asks for half: its 10 s clean phase against 20 s mixed
	// compares p50s within seconds of each other, and at 70% of a maximum
	// measured moments before, a busy CI machine's stall queues every
	// request (seen: p50 12.7 ms mixed against 2.4 ms clean, the
	// gateway's own work unchanged).
	share := 0.7
	if suite.ciForm {
		share = 0.5
	}
	target := share * maxRate
	// What the generator holds at that rate on this machine (it shares the
	// cores with the gateway): 3 s open-loop; past 1% overruns, the rate is
	// cut to 90% of what was answered, at most three times.
	rate := math.Round(target)
	for range 3 {
		cal := startPooledLoad(pool, hotStream(rate, g))
		time.Sleep(3 * time.Second)
		cal.stop()
		c := cal.get("hot reads")
		if c.overrunShare() <= heldOverrun {
			break
		}
		rate = math.Round(0.9 * float64(c.Sent) / cal.end.Sub(cal.start).Seconds())
	}

	// Warm-up at the soak's load, then the starting figures with the
	// load stopped and the client's connections closed, as at the end.
	// Its writes have titles of their own: a stream's titles are its
	// prefix and sequence number.
	w0, w := newWrites(uniqueName(t)), newWrites(uniqueName(t))
	warm := startPooledLoad(pool, hotStream(rate, g), refreshStream(1, g), w0.stream(10, g))
	time.Sleep(5 * time.Second)
	warm.stop()
	require.Zero(t, warm.all().Failed, "warm-up: %s", warm.all().failures())
	start := quietStats(g, nil)

	classes := malformedClasses(g)
	refusedBefore := map[string]float64{}
	for _, m := range classes {
		if m.refused != "" {
			refusedBefore[m.refused] = g.metric(fmt.Sprintf(`kck_refused_total{limit="%s"}`, m.refused))
		}
	}

	l := startPooledLoad(pool, hotStream(rate, g), refreshStream(1, g), w.stream(10, g))
	l.setPhase("clean")
	clean := suite.soak / 3
	time.Sleep(clean)
	l.setPhase("mixed")
	streams := make([]stream, len(classes))
	for i, m := range classes {
		streams[i] = m.stream()
	}
	bad := startLoad(streams...)
	time.Sleep(suite.soak - clean)
	bad.stop()
	l.stop()
	require.True(t, g.alive(), "the gateway exited")
	assert.Equal(t, 200, g.readyStatus(), "/readyz after the soak")

	slack := procStats{Goroutines: start.Goroutines + 20, FDs: start.FDs + 20}
	end := quietStats(g, &slack)

	good := l.all()
	hot := l.get("hot reads")
	soakFor := l.end.Sub(l.start)
	held := float64(hot.Sent) / soakFor.Seconds()
	c50, c99 := l.get("hot reads", "clean").Pct(50), l.get("hot reads", "clean").Pct(99)
	m50, m99 := l.get("hot reads", "mixed").Pct(50), l.get("hot reads", "mixed").Pct(99)
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, time.Microsecond)) }

	var badSent, badOK int
	for _, m := range classes {
		tl := bad.get(m.class)
		badSent += tl.Sent + tl.Overrun
		badOK += tl.OK
	}
	r.Load = fmt.Sprintf("%s (max %.0f hot reads/s closed-loop, %d workers, %v; %.0f%% = %.0f/s; due at %.0f/s after calibration; sent and answered %.0f/s, %d overruns), 1 gateway (%s store); + %d malformed requests/s of %d classes for the last %.0f s",
		l.held(), maxRate, workers, burst, 100*share, target, rate, held, hot.Overrun, store, int(sumRates(classes)), len(classes), bad.end.Sub(bad.start).Seconds())
	r.Failed = fmt.Sprintf("good %s; malformed answered otherwise than expected: %d of %d", good.failures(), badSent-badOK, badSent)
	r.Stale = fmt.Sprint(good.Stale)
	r.Recover = "- (no fault)"
	r.note("max hit rate: %d workers in a closed loop on GET /fetch?key=title_list/<random of %d> for %v: %.0f/s; the soak's target %.0f/s, held %.0f/s (answered hot reads over %.0f s), %d overruns; rate sent (calibrated: 3 s open-loop, cut to 90%% of what was answered while overruns passed 1%%) %.0f/s, through a pool of %d workers", workers, authors, burst, maxRate, target, held, soakFor.Seconds(), hot.Overrun, rate, pool)
	for _, c := range []string{"hot reads", "refreshes", "writes"} {
		for _, ph := range []string{"clean", "mixed"} {
			tl := l.get(c, ph)
			r.note("%s, %s: %d sent, %d failed, p50 %v, p99 %v, max %v", ph, c, tl.Sent, tl.Failed, tl.Pct(50).Round(10*time.Microsecond), tl.Pct(99).Round(10*time.Microsecond), tl.Max.Round(time.Millisecond))
		}
	}
	r.note("hot reads' latency with the malformed mix over without: p50 %v / %v = %.2f, p99 %v / %v = %.2f",
		m50.Round(10*time.Microsecond), c50.Round(10*time.Microsecond), ratio(m50, c50), m99.Round(10*time.Microsecond), c99.Round(10*time.Microsecond), ratio(m99, c99))
	for _, m := range classes {
		tl := bad.get(m.class)
		r.note("malformed, %s: %d sent, %d answered %d %s; otherwise: %s", m.class, tl.Sent+tl.Overrun, tl.OK, m.status, m.code, tl.failures())
	}
	r.note("gateway after warm-up / at the end (load stopped, client connections closed): RSS %.0f / %.0f MiB, goroutines %.0f / %.0f, FDs %d / %d",
		start.RSSMiB, end.RSSMiB, start.Goroutines, end.Goroutines, start.FDs, end.FDs)

	w0.converge(t, dsn, 2*time.Minute, g)
	dc := w.converge(t, dsn, 2*time.Minute, g)
	r.DataLost = dc.String()

	assert.Zero(t, good.Failed, "good requests failed: %s", good.failures())
	// An overrun is a request the generator could not send on time, a
	// shortfall of the machine (its cores shared by the generator, the
	// gateway and other work), not a failure of the gateway: reported in
	// the row (Load: sent, answered, overruns), not asserted.
	if good.Overrun > 0 {
		held := "held"
		if good.overrunShare() > heldOverrun {
			held = "NOT HELD"
		}
		r.note("%s: the generator sent %.0f/s of the %.0f/s due (%d overruns of %d due, %.2f%%); the gateway answered all it was sent", held, float64(good.Sent)/soakFor.Seconds(), rate, good.Overrun, good.Sent+good.Overrun, 100*good.overrunShare())
	}
	assert.Zero(t, bad.all().Overrun, "the malformed load fell behind")
	for _, m := range classes {
		tl := bad.get(m.class)
		assert.Positive(t, tl.Sent, "%s: none sent", m.class)
		assert.Equal(t, tl.Sent, tl.OK, "%s: every one answered %d %s; otherwise: %s", m.class, m.status, m.code, tl.failures())
		if m.refused != "" {
			got := g.metric(fmt.Sprintf(`kck_refused_total{limit="%s"}`, m.refused)) - refusedBefore[m.refused]
			assert.Equal(t, float64(tl.Sent), got, "%s: kck_refused_total{limit=%q} counts every one sent", m.class, m.refused)
		}
	}
	// A busy machine moves latencies by milliseconds: the bound is a ratio
	// or an absolute margin, whichever is looser.
	assert.True(t, m50 <= 3*c50 || m50-c50 <= 5*time.Millisecond, "hot reads' p50 with the malformed mix %v, without %v", m50, c50)
	// p99 is reported, not asserted: on a machine whose cores are shared,
	// its tail is the other work's stalls (seen: 191 ms to 1.16 s between
	// phases of one run).
	// Goroutines and FDs: the same quiet state at both ends, so a small
	// slack covers timers and the store driver's reconnects; a leak per
	// request would be thousands. RSS: the Go heap grows to its GC target
	// under load and the runtime returns freed pages lazily, so the bound
	// allows half again plus 64 MiB; keeping every oversized body (4 MiB/s)
	// would pass it in the full soak's first minutes.
	assert.LessOrEqual(t, end.Goroutines, slack.Goroutines, "goroutines grew: %.0f -> %.0f", start.Goroutines, end.Goroutines)
	assert.LessOrEqual(t, end.FDs, slack.FDs, "file descriptors grew: %d -> %d", start.FDs, end.FDs)
	assert.LessOrEqual(t, end.RSSMiB, start.RSSMiB*1.5+64, "RSS grew: %.0f -> %.0f MiB", start.RSSMiB, end.RSSMiB)
}

func sumRates(ms []malformed) float64 {
	var s float64
	for _, m := range ms {
		s += m.rate
	}
	return s
}
