package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// wrkScript rotates each wrk thread over the first k authors' queries
// (k is the script's argument), built once per thread, and prints the
// summary as JSON. The bodies are byte for byte those of body().
const wrkScript = `
local q = '{"query":"query($a: Int!) { titleList(authorId: $a) { id title year } }","variables":{"a":%d}}'
local reqs, i = {}, 0
function init(args)
  local k = tonumber(args[1]) or 300
  for a = 1, k do
    reqs[a] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, string.format(q, a))
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('\nPEERS {"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    s.requests, s.duration, e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
`

type closedResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

// wrk runs the closed-loop load: c.conns connections, each sending its next
// request as soon as the last is answered, for c.dur.
func wrk(script, url string, keys int, c config) (closedResult, error) {
	out, err := exec.Command("wrk", "-t", strconv.Itoa(c.wrkThreads), "-c", strconv.Itoa(c.conns), "-d", c.dur.String(),
		"--timeout", "10s", "-s", script, url, "--", strconv.Itoa(keys)).CombinedOutput()
	if err != nil {
		return closedResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	i := bytes.LastIndex(out, []byte("PEERS "))
	if i < 0 {
		return closedResult{}, fmt.Errorf("wrk printed no summary: %s", out)
	}
	var s struct {
		Requests     int64 `json:"requests"`
		DurationUS   int64 `json:"duration_us"`
		SocketErrors int64 `json:"socket_errors"`
		StatusErrors int64 `json:"status_errors"`
		P50US        int64 `json:"p50_us"`
		P99US        int64 `json:"p99_us"`
	}
	line, _, _ := bytes.Cut(out[i+len("PEERS "):], []byte("\n"))
	if err := json.Unmarshal(line, &s); err != nil {
		return closedResult{}, fmt.Errorf("wrk summary %q: %w", line, err)
	}
	return closedResult{
		rps:    float64(s.Requests) / (float64(s.DurationUS) / 1e6),
		p50:    time.Duration(s.P50US) * time.Microsecond,
		p99:    time.Duration(s.P99US) * time.Microsecond,
		errors: s.SocketErrors + s.StatusErrors,
	}, nil
}

type openResult struct {
	fraction, rate float64
	over           bool // the rate is above the server's closed-loop maximum: not run
	achieved       float64
	p50, p99, p999 time.Duration
	n, errors      int
}

// cell is the result as a table cell: p50 / p99 / p99.9 in ms.
func (o openResult) cell() string {
	if o.over {
		return "over its max"
	}
	s := fmt.Sprintf("%s / %s / %s", msStr(o.p50), msStr(o.p99), msStr(o.p999))
	if o.errors > 0 {
		s += fmt.Sprintf(" (%d errors)", o.errors)
	}
	if o.achieved < 0.95*o.rate {
		s += fmt.Sprintf(" (sent %.0f/s)", o.achieved)
	}
	return s
}

func msStr(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

// attack runs the open-loop load: requests sent at rate per second whatever
// the answers' latency (vegeta's constant pacer; it adds workers, up to
// 1,024, rather than hold back a request that is due), rotating over keys
// authors, for d.
func attack(url string, keys int, rate float64, d time.Duration) (openResult, error) {
	bodies := make([][]byte, keys)
	for i := range bodies {
		bodies[i] = body(keyAuthor(i, keys))
	}
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	var next atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, url, bodies[i%uint64(keys)], hdr
		return nil
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableCompression: true, MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024, IdleConnTimeout: 30 * time.Second,
	}}
	defer client.CloseIdleConnections()
	newAttacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(32), vegeta.MaxWorkers(1024))
	}
	pacer := vegeta.ConstantPacer{Freq: int(rate + 0.5), Per: time.Second}
	// A short warm-up at the same rate opens the connections first (an
	// attacker runs one attack).
	for range newAttacker().Attack(targeter, pacer, min(d/4, time.Second), "warm-up") {
	}
	atk := newAttacker()
	var lats []time.Duration
	o := openResult{rate: rate}
	t0 := time.Now()
	var last time.Time
	for res := range atk.Attack(targeter, pacer, d, "load") {
		o.n++
		if res.Code != http.StatusOK || res.Error != "" {
			o.errors++
		}
		lats = append(lats, res.Latency)
		if end := res.Timestamp.Add(res.Latency); end.After(last) {
			last = end
		}
	}
	if o.n == 0 {
		return o, fmt.Errorf("no requests were sent")
	}
	o.achieved = float64(o.n) / max(d, last.Sub(t0)).Seconds()
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[int(p*float64(len(lats)-1))] }
	o.p50, o.p99, o.p999 = pct(0.50), pct(0.99), pct(0.999)
	return o, nil
}
