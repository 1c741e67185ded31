package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of every gateway: samples[i] is gateway i's.
type metrics [][]sample

// parseMetrics reads the Prometheus text format (what /metrics answers
// without an Accept header): comments skipped, one sample a line.
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var s sample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics: bad line %q", line)
			}
			s.name, rest = line[:i], line[j+1:]
			s.labels = parseLabels(line[i+1 : j])
		} else {
			name, r, _ := strings.Cut(line, " ")
			s.name, rest = name, " "+r
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads a="x",b="y" (values as /metrics writes them: escaped
// quotes and backslashes only).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			break
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest); i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(rest[i])
				}
				continue
			}
			if rest[i] == '"' {
				break
			}
			v.WriteByte(rest[i])
		}
		m[strings.TrimSpace(k)] = v.String()
		s = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return m
}

// matches reports whether s is name with every label of want.
func (s sample) matches(name string, want map[string]string) bool {
	if s.name != name {
		return false
	}
	for k, v := range want {
		if s.labels[k] != v {
			return false
		}
	}
	return true
}

// sum adds name's samples with the labels of want (nil: all), over every
// gateway.
func (m metrics) sum(name string, want map[string]string) float64 {
	t := 0.0
	for _, g := range m {
		t += gatewaySum(g, name, want)
	}
	return t
}

func gatewaySum(g []sample, name string, want map[string]string) float64 {
	t := 0.0
	for _, s := range g {
		if s.matches(name, want) {
			t += s.value
		}
	}
	return t
}

// by adds name's samples by the value of label, over every gateway.
func (m metrics) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, g := range m {
		for _, s := range g {
			if s.name == name {
				out[s.labels[label]] += s.value
			}
		}
	}
	return out
}

// count is how many gateways have name with the labels of want at value.
func (m metrics) count(name string, want map[string]string, value float64) int {
	n := 0
	for _, g := range m {
		for _, s := range g {
			if s.matches(name, want) && s.value == value {
				n++
				break
			}
		}
	}
	return n
}

// delta is after's sum less before's.
func delta(before, after metrics, name string, want map[string]string) float64 {
	return after.sum(name, want) - before.sum(name, want)
}

// deltaBy is after's sums by label less before's.
func deltaBy(before, after metrics, name, label string) map[string]float64 {
	out := after.by(name, label)
	for k, v := range before.by(name, label) {
		out[k] -= v
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// histogram is a cumulative histogram's buckets, summed over gateways.
type histogram struct {
	le    []float64
	count []float64 // cumulative, as le
}

// histogramDelta is name's buckets in after less those in before.
func histogramDelta(before, after metrics, name string) histogram {
	d := after.by(name+"_bucket", "le")
	for k, v := range before.by(name+"_bucket", "le") {
		d[k] -= v
	}
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range d {
		le, err := strconv.ParseFloat(k, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	var h histogram
	for _, b := range bs {
		h.le, h.count = append(h.le, b.le), append(h.count, b.n)
	}
	return h
}

// total is the histogram's observation count.
func (h histogram) total() float64 {
	if len(h.count) == 0 {
		return 0
	}
	return h.count[len(h.count)-1]
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile does
// (linear within the bucket); the last finite bound when it falls in +Inf.
func (h histogram) quantile(q float64) (time.Duration, bool) {
	n := h.total()
	if n == 0 {
		return 0, false
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, le := range h.le {
		if h.count[i] >= rank {
			if math.IsInf(le, 1) {
				return seconds(lower), true
			}
			in := h.count[i] - below
			if in <= 0 {
				return seconds(le), true
			}
			return seconds(lower + (le-lower)*(rank-below)/in), true
		}
		lower, below = le, h.count[i]
	}
	return seconds(lower), true
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

var scrapeClient = &http.Client{Timeout: 20 * time.Second}

// scrape reads every gateway's /metrics at once.
func scrape(ctx context.Context, gws []*gateway) (metrics, error) {
	m := make(metrics, len(gws))
	errs := make([]error, len(gws))
	var wg sync.WaitGroup
	for i, g := range gws {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/metrics", nil)
			resp, err := scrapeClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("%s/metrics: %s", g.base, resp.Status)
				return
			}
			m[i], errs[i] = parseMetrics(resp.Body)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}
