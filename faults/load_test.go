//go:build faults

package faults

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load is open-loop, at a fixed rate per stream: a request is sent when
// its time comes, whatever the earlier ones take, so a stalled gateway shows
// as failures and latency instead of slowing the load down (what a closed
// loop of workers would do, and what hides a stall). It is a small generator
// of our own rather than vegeta: every answer is classified by its body
// (the stale flag, extensions.code / error.code), streams differ per
// request (a fresh key per miss, a unique title per write), and the write
// stream records which writes were acknowledged for the data-loss check:
// ~150 lines against a dependency with its own tree.

// call is one request of a stream.
type call struct {
	gw     *gateway
	method string
	path   string
	body   string
	ctype  string
}

// stream is one kind of request at a fixed rate.
type stream struct {
	class string
	rate  float64 // requests per second
	// next makes the seq-th request; one with no gateway is not sent (its
	// gateway was taken out of the load).
	next func(seq int64) call
	// exec, when set, is done instead of an HTTP request (a change made in
	// the source database, say): nil is a success, status 200.
	exec func(seq int64) error
	// done, if set, sees every answer (status 0: no answer).
	done func(seq int64, c call, status int, body []byte)
	// ok decides what counts as success; default: status 200.
	ok func(status int, body []byte) bool
}

type tally struct {
	Sent, OK, Failed, Stale, Overrun int
	Statuses                         map[string]int // "503 UNAVAILABLE": count
	// errs are the first few client errors of the requests that got no
	// answer (a reset, a timeout), so that a report says which.
	errs []string
	lat  []time.Duration
	// staleLat are the latencies of the answers flagged stale.
	staleLat []time.Duration
	Max      time.Duration
}

func (t *tally) add(o *tally) {
	t.Sent += o.Sent
	t.OK += o.OK
	t.Failed += o.Failed
	t.Stale += o.Stale
	t.Overrun += o.Overrun
	for k, v := range o.Statuses {
		if t.Statuses == nil {
			t.Statuses = map[string]int{}
		}
		t.Statuses[k] += v
	}
	for _, e := range o.errs {
		t.noteErr(e)
	}
	t.lat = append(t.lat, o.lat...)
	t.staleLat = append(t.staleLat, o.staleLat...)
	t.Max = max(t.Max, o.Max)
}

// overrunShare is the share (0..1) of due requests that were not sent.
func (t *tally) overrunShare() float64 {
	if t.Sent+t.Overrun == 0 {
		return 0
	}
	return float64(t.Overrun) / float64(t.Sent+t.Overrun)
}

// Pct is a latency percentile (0..100) of the answered requests.
func (t *tally) Pct(p float64) time.Duration {
	if len(t.lat) == 0 {
		return 0
	}
	s := slices.Clone(t.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

// StalePct is a latency percentile of the answers flagged stale.
func (t *tally) StalePct(p float64) time.Duration {
	return (&tally{lat: t.staleLat}).Pct(p)
}

// Over is the share (0..1) of answered requests that took at least d.
func (t *tally) Over(d time.Duration) float64 {
	if len(t.lat) == 0 {
		return 0
	}
	n := 0
	for _, l := range t.lat {
		if l >= d {
			n++
		}
	}
	return float64(n) / float64(len(t.lat))
}

// failures spells the failed requests: "12 (503 UNAVAILABLE ×10, 504 TIMEOUT ×2)".
func (t *tally) failures() string {
	if t.Failed == 0 {
		return "0"
	}
	keys := make([]string, 0, len(t.Statuses))
	for k := range t.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, t.Statuses[k])
	}
	if len(t.errs) > 0 {
		parts = append(parts, "client errors: "+strings.Join(t.errs, "; "))
	}
	return fmt.Sprintf("%d (%s)", t.Failed, strings.Join(parts, ", "))
}

// maxErrs bounds the client errors a tally keeps.
const maxErrs = 3

// noteErr keeps e when it is new and there is room.
func (t *tally) noteErr(e string) {
	if len(t.errs) < maxErrs && !slices.Contains(t.errs, e) {
		t.errs = append(t.errs, e)
	}
}

// load runs streams until stop; tallies are kept per phase and class.
type load struct {
	streams []stream
	stopped chan struct{}
	wg      sync.WaitGroup
	// inflight bounds the requests outstanding at once: past it a due
	// request is counted as an overrun, not sent (the generator's own bound).
	inflight atomic.Int64
	max      int64

	// work, when set (startPooledLoad), carries the due requests to a fixed
	// pool of workers instead of a goroutine each.
	work chan job
	pool sync.WaitGroup
	// tick is how often a stream sends what is due (default 5 ms).
	tick time.Duration

	mu     sync.Mutex
	phase  string
	tally  map[[2]string]*tally // phase, class
	phases []string
	start  time.Time
	end    time.Time
}

var errCode = regexp.MustCompile(`"code"\s*:\s*"([A-Z_]+)"`)

func startLoad(streams ...stream) *load {
	l := &load{streams: streams, stopped: make(chan struct{}), max: 4000, tally: map[[2]string]*tally{}, start: time.Now()}
	l.setPhase("before")
	for _, s := range streams {
		l.wg.Go(func() { l.run(s) })
	}
	return l
}

// setPhase starts a phase: answers are tallied under the phase their
// request was sent in.
func (l *load) setPhase(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase = p
	if !slices.Contains(l.phases, p) {
		l.phases = append(l.phases, p)
	}
}

// job is one due request for the pool.
type job struct {
	s     stream
	seq   int64
	phase string
	due   time.Time
}

// startPooledLoad is startLoad with a pool of workers sending the due
// requests: cheaper than a goroutine per request (and as many connections
// at most), for rates a busy machine's generator cannot otherwise hold. A
// due request goes to a free worker, or waits in a queue of 16 per worker
// (a stall of the machine's, a GC or another process, is absorbed instead
// of dropped); past that it is an overrun, not sent. Its latency counts
// from when it was due, so time spent queued is not hidden.
func startPooledLoad(workers int, streams ...stream) *load {
	l := &load{streams: streams, stopped: make(chan struct{}), tally: map[[2]string]*tally{}, start: time.Now(), work: make(chan job, 16*workers), tick: time.Millisecond}
	l.setPhase("before")
	for range workers {
		l.pool.Go(func() {
			for j := range l.work {
				l.do(j.s, j.seq, j.phase, j.due)
			}
		})
	}
	for _, s := range streams {
		l.wg.Go(func() { l.run(s) })
	}
	return l
}

func (l *load) run(s stream) {
	tick := l.tick
	if tick == 0 {
		tick = 5 * time.Millisecond
	}
	t0 := time.Now()
	var sent int64
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		var now time.Time
		select {
		case <-l.stopped:
			return
		case now = <-tk.C:
		}
		due := int64(s.rate*time.Since(t0).Seconds()) - sent
		for range due {
			seq := sent
			sent++
			l.mu.Lock()
			phase := l.phase
			l.mu.Unlock()
			if l.work != nil {
				select {
				case l.work <- job{s, seq, phase, now}:
				default:
					l.record(phase, s.class, func(t *tally) { t.Overrun++ })
				}
				continue
			}
			if l.inflight.Load() >= l.max {
				l.record(phase, s.class, func(t *tally) { t.Overrun++ })
				continue
			}
			l.inflight.Add(1)
			l.wg.Go(func() {
				defer l.inflight.Add(-1)
				l.do(s, seq, phase, now)
			})
		}
	}
}

// do sends one request; its latency counts from due, when the generator
// meant to send it.
func (l *load) do(s stream, seq int64, phase string, due time.Time) {
	var (
		c   call
		req *http.Request
		err error
	)
	if s.exec != nil {
		l.executed(s, seq, phase, due, c, s.exec(seq))
		return
	}
	if c = s.next(seq); c.gw == nil {
		return
	}
	if c.method == "" {
		c.method = http.MethodGet
	}
	req, err = http.NewRequest(c.method, c.gw.base+c.path, strings.NewReader(c.body))
	if err != nil {
		panic(err) // the test built a bad request
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	resp, err := client.Do(req)
	var (
		status int
		body   []byte
	)
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	l.answered(s, seq, phase, due, c, status, body, err)
}

// executed records the outcome of a stream's exec.
func (l *load) executed(s stream, seq int64, phase string, due time.Time, c call, err error) {
	status, body := 200, []byte(nil)
	if err != nil {
		status, body = 500, []byte(fmt.Sprintf(`{"code":"EXEC_FAILED","message":%q}`, err.Error()))
	}
	l.answered(s, seq, phase, due, c, status, body, nil)
}

// answered tallies one answer; err: none came.
func (l *load) answered(s stream, seq int64, phase string, due time.Time, c call, status int, body []byte, err error) {
	lat := time.Since(due)
	if s.done != nil {
		s.done(seq, c, status, body)
	}
	ok := status == 200
	if s.ok != nil {
		ok = s.ok(status, body)
	}
	l.record(phase, s.class, func(t *tally) {
		t.Sent++
		t.lat = append(t.lat, lat)
		t.Max = max(t.Max, lat)
		if ok {
			t.OK++
			if strings.Contains(string(body), `"stale":true`) {
				t.Stale++
				t.staleLat = append(t.staleLat, lat)
			}
			return
		}
		t.Failed++
		what := "no answer"
		if err != nil {
			t.noteErr(err.Error())
		} else {
			what = fmt.Sprint(status)
			if m := errCode.FindSubmatch(body); m != nil {
				what += " " + string(m[1])
			}
		}
		if t.Statuses == nil {
			t.Statuses = map[string]int{}
		}
		t.Statuses[what]++
	})
}

func (l *load) record(phase, class string, f func(*tally)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]string{phase, class}
	t := l.tally[k]
	if t == nil {
		t = &tally{}
		l.tally[k] = t
	}
	f(t)
}

// stop ends the load and waits for every answer.
func (l *load) stop() {
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
		l.end = time.Now()
		l.wg.Wait()
		if l.work != nil {
			close(l.work)
		}
	}
	l.wg.Wait()
	l.pool.Wait()
}

// get sums the tallies of a class over the given phases (none: all).
func (l *load) get(class string, phases ...string) *tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := &tally{}
	for k, t := range l.tally {
		if k[1] == class && (len(phases) == 0 || slices.Contains(phases, k[0])) {
			out.add(t)
		}
	}
	return out
}

// all sums every class of the given phases (none: all).
func (l *load) all(phases ...string) *tally {
	out := &tally{}
	for _, s := range l.streams {
		out.add(l.get(s.class, phases...))
	}
	return out
}

// held spells the load: "200 reads/s + 5 writes/s for 62 s".
func (l *load) held() string {
	parts := make([]string, len(l.streams))
	for i, s := range l.streams {
		parts[i] = fmt.Sprintf("%g %s/s", s.rate, s.class)
	}
	return fmt.Sprintf("%s for %.0f s", strings.Join(parts, " + "), l.end.Sub(l.start).Seconds())
}
