package admin

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// snapshot is one Gather of the registry /metrics serves, indexed by name:
// every figure of a response is read from the same snapshot.
type snapshot map[string]*dto.MetricFamily

func gather(g prometheus.Gatherer) (snapshot, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	s := make(snapshot, len(mfs))
	for _, mf := range mfs {
		s[mf.GetName()] = mf
	}
	return s, nil
}

// match reports whether m carries every label of want.
func match(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// value sums the counters or gauges of name whose labels include want.
func (s snapshot) value(name string, want map[string]string) float64 {
	var sum float64
	for _, m := range s[name].GetMetric() {
		if match(m, want) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// byLabel sums the series of name by the value of label, among those whose
// labels include want.
func (s snapshot) byLabel(name, label string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range s[name].GetMetric() {
		if !match(m, want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// Histogram is a histogram's buckets as /metrics shows them: cumulative
// counts by upper bound, with the total count and sum.
type Histogram struct {
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"`
	Bounds  []float64 `json:"bounds"`
	Buckets []uint64  `json:"buckets"` // cumulative, one per bound
	// P50 and P99 are estimated from the buckets as Prometheus'
	// histogram_quantile does (linear within a bucket); null with no
	// observation.
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

// histogram merges the histograms of name whose labels include want.
func (s snapshot) histogram(name string, want map[string]string) Histogram {
	var h Histogram
	idx := map[float64]int{}
	for _, m := range s[name].GetMetric() {
		if !match(m, want) || m.GetHistogram() == nil {
			continue
		}
		mh := m.GetHistogram()
		h.Count += mh.GetSampleCount()
		h.Sum += mh.GetSampleSum()
		for _, b := range mh.GetBucket() {
			ub := b.GetUpperBound()
			i, ok := idx[ub]
			if !ok {
				i = len(h.Bounds)
				idx[ub] = i
				h.Bounds = append(h.Bounds, ub)
				h.Buckets = append(h.Buckets, 0)
			}
			h.Buckets[i] += b.GetCumulativeCount()
		}
	}
	sortBuckets(&h)
	h.P50, h.P99 = h.quantile(0.5), h.quantile(0.99)
	return h
}

func sortBuckets(h *Histogram) {
	order := make([]int, len(h.Bounds))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return h.Bounds[order[a]] < h.Bounds[order[b]] })
	bounds, buckets := make([]float64, len(order)), make([]uint64, len(order))
	for i, o := range order {
		bounds[i], buckets[i] = h.Bounds[o], h.Buckets[o]
	}
	h.Bounds, h.Buckets = bounds, buckets
}

// quantile is histogram_quantile's estimate: find the bucket holding rank
// q*count and interpolate linearly within it (from 0 for the first); above
// the last finite bound it answers that bound.
func (h Histogram) quantile(q float64) *float64 {
	if h.Count == 0 {
		return nil
	}
	rank := q * float64(h.Count)
	lower, prev := 0.0, uint64(0)
	for i, ub := range h.Bounds {
		c := h.Buckets[i]
		if float64(c) >= rank {
			v := ub
			if c > prev && !math.IsInf(ub, 1) {
				v = lower + (ub-lower)*(rank-float64(prev))/float64(c-prev)
			} else if math.IsInf(ub, 1) {
				v = lower
			}
			return &v
		}
		lower, prev = ub, c
	}
	v := lower // beyond every bound: the highest finite one
	return &v
}
