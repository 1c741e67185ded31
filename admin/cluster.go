package admin

import (
	"context"
	"encoding/json"
	"github.com/kck-go/kck/apierror"
	"net/http"
	"sort"
	"sync"
	"time"
)

// The cluster view: a console asks the other gateways of the cluster who
// they are over the change bus (Roster), when the view is asked for, and
// each answers with its own figures; nothing runs in the background for
// it, so the view costs the cluster one question and an answer per
// gateway each time it is drawn. Without a bus the view shows this gateway
// only. Each gateway still samples its own counters every
// HeartbeatInterval, for its charts and its hit rate.

// Roster reaches the other gateways of the cluster (cache/nats.Bus).
type Roster interface {
	// Gather asks every other gateway that answers topic and returns the
	// answers that came before ctx ended.
	Gather(ctx context.Context, topic string, q []byte) ([][]byte, error)
	// Answer answers the other gateways' questions on topic.
	Answer(topic string, fn func(q []byte) []byte) error
}

// rosterTopic is the question "who are you?".
const rosterTopic = "gateways"

// rosterWait is how long a view waits for the answers.
const rosterWait = 300 * time.Millisecond

// heartbeatPrefix started the heartbeat keys gateways wrote into the store
// before the change bus; actions by prefix still skip any left there. It
// is no product's name (product names cannot hold ':').
const heartbeatPrefix = "kck:gateway/"

// Gateway is one gateway of the cluster as it answered.
type Gateway struct {
	Owner   string    `json:"owner"`
	Addr    string    `json:"addr"`
	Version string    `json:"version"`
	UpSince time.Time `json:"upSince"`
	// SeenAt is when the heartbeat was written.
	SeenAt time.Time `json:"seenAt"`
	// Entries and Bytes are its in-process tier's size (of MaxBytes).
	Entries  int    `json:"entries"`
	Bytes    uint64 `json:"bytes"`
	MaxBytes uint64 `json:"maxBytes"`
	// Hits is its kck_cache_reads_total of hit_memory and hit_store;
	// HitsPerSecond their rate over the last heartbeat interval.
	Hits          float64 `json:"hits"`
	HitsPerSecond float64 `json:"hitsPerSecond"`
	// Self marks the gateway answering.
	Self bool `json:"self"`
}

type heartbeat struct {
	a *Console

	mu       sync.Mutex
	lastHits float64
	lastAt   time.Time
	rate     float64
}

func newHeartbeat(a *Console) *heartbeat { return &heartbeat{a: a} }

func (h *heartbeat) hits(s snapshot) float64 {
	r := s.byLabel("kck_cache_reads_total", "outcome", nil)
	return r["hit_memory"] + r["hit_store"]
}

// self describes this gateway now.
func (h *heartbeat) self(now time.Time, s snapshot) Gateway {
	a := h.a
	ms := a.c.MemoryStats()
	h.mu.Lock()
	rate := h.rate
	h.mu.Unlock()
	return Gateway{
		Owner: a.c.Owner(), Addr: a.opts.Addr, Version: a.opts.Version, UpSince: a.started.UTC(), SeenAt: now.UTC(),
		Entries: ms.Entries, Bytes: ms.Bytes, MaxBytes: ms.MaxBytes,
		Hits: h.hits(s), HitsPerSecond: rate, Self: true,
	}
}

// sample keeps a sample of this gateway's counters for its charts, and
// its hit rate.
func (h *heartbeat) sample() {
	a := h.a
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		a.log.Warn("admin: heartbeat: metrics", "err", err)
		return
	}
	now := a.opts.Clock.Now()
	a.hist.add(sampleOf(now, s))
	hits := h.hits(s)
	h.mu.Lock()
	if !h.lastAt.IsZero() && now.After(h.lastAt) {
		h.rate = (hits - h.lastHits) / now.Sub(h.lastAt).Seconds()
	}
	h.lastHits, h.lastAt = hits, now
	h.mu.Unlock()
}

// answer is this gateway's answer to the roster's question.
func (h *heartbeat) answer([]byte) []byte {
	a := h.a
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		return nil
	}
	g := h.self(a.opts.Clock.Now(), s)
	g.Self = false
	b, _ := json.Marshal(g)
	return b
}

// cluster lists the gateways that answered, this one first, and whether
// there is a cluster to ask.
func (a *Console) cluster(ctx context.Context, s snapshot) ([]Gateway, bool) {
	now := a.opts.Clock.Now()
	out := []Gateway{a.beat.self(now, s)}
	if a.opts.Roster == nil {
		return out, false
	}
	ctx, cancel := context.WithTimeout(ctx, rosterWait)
	defer cancel()
	answers, err := a.opts.Roster.Gather(ctx, rosterTopic, nil)
	if err != nil {
		a.log.Warn("admin: cluster: asking the other gateways", "err", err)
		return out, true
	}
	seen := map[string]bool{out[0].Owner: true}
	for _, raw := range answers {
		var g Gateway
		if json.Unmarshal(raw, &g) == nil && g.Owner != "" && !seen[g.Owner] {
			seen[g.Owner] = true
			out = append(out, g)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Owner < out[1+j].Owner })
	return out, true
}

func (a *Console) handleCluster(w http.ResponseWriter, r *http.Request) {
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		writeError(w, http.StatusInternalServerError, apierror.Internal, "could not read the metrics")
		return
	}
	gws, shared := a.cluster(r.Context(), s)
	writeJSON(w, http.StatusOK, map[string]any{"gateways": gws, "sharedStore": shared})
}
