package admin

import (
	"net/http"
	"sync"
	"time"
)

// The charts' history: each heartbeat (every HeartbeatInterval) keeps a
// sample of the counters the charts are drawn from, the last historySize of
// them, so that a page opened now draws the last half hour at once. The
// samples are cumulative, as /metrics is; the page takes rates between two.

const historySize = 360 // 30 minutes at the default 5 s

// Sample is the charts' counters at one moment.
type Sample struct {
	At            time.Time `json:"at"`
	Hits          float64   `json:"hits"` // kck_cache_reads_total hit_memory + hit_store
	Misses        float64   `json:"misses"`
	Stale         float64   `json:"stale"`
	PrimerRuns    uint64    `json:"primerRuns"` // kck_primer_duration_seconds count and sum
	PrimerSeconds float64   `json:"primerSeconds"`
	// QueueDepth is kck_queue_depth (as the worker last read it); null
	// without a queue worker.
	QueueDepth *float64 `json:"queueDepth"`
}

type history struct {
	mu      sync.Mutex
	samples []Sample // a ring: next is the oldest once full
	next    int
}

func (h *history) add(s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < historySize {
		h.samples = append(h.samples, s)
		return
	}
	h.samples[h.next] = s
	h.next = (h.next + 1) % historySize
}

// all returns the samples, oldest first.
func (h *history) all() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sample, 0, len(h.samples))
	out = append(out, h.samples[h.next:]...)
	return append(out, h.samples[:h.next]...)
}

func sampleOf(at time.Time, s snapshot) Sample {
	r := s.byLabel("kck_cache_reads_total", "outcome", nil)
	ph := s.histogram("kck_primer_duration_seconds", nil)
	out := Sample{At: at.UTC(), Hits: r["hit_memory"] + r["hit_store"], Misses: r["miss"], Stale: r["stale"],
		PrimerRuns: ph.Count, PrimerSeconds: ph.Sum}
	if _, ok := s["kck_queue_depth"]; ok {
		d := s.value("kck_queue_depth", nil)
		out.QueueDepth = &d
	}
	return out
}

func (a *Console) handleHistory(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"intervalSeconds": a.opts.HeartbeatInterval.Seconds(),
		"samples":         a.hist.all(),
	})
}
