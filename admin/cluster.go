package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kck-go/kck/cache"
)

// The cluster view: each gateway writes a heartbeat row into the store
// every HeartbeatInterval (a plain entry under heartbeatPrefix+owner that
// expires after three intervals) and publishes it on the store's change
// feed. A console lists the gateways from the feed's recent changes and
// reads their rows: no store method was added, and a gateway that stops
// disappears when its row expires (at once when it closes cleanly). A store
// without a change feed is one gateway's: the view shows this one only.

// heartbeatPrefix starts every heartbeat key. It is no product's name
// (product names cannot hold ':'), so it never meets a product key.
const heartbeatPrefix = "kck:gateway/"

// Gateway is one gateway of the cluster as its heartbeat says.
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

// write stores this gateway's heartbeat and publishes it.
func (h *heartbeat) write(ctx context.Context) {
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
	g := h.self(now, s)
	g.Self = false
	value, _ := json.Marshal(g)
	key := heartbeatPrefix + g.Owner
	version := uint64(now.UnixMicro())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := a.c.Store()
	e := cache.Entry{Key: key, Value: value, Version: version, ComputedAt: now, ExpiresAt: now.Add(3 * a.opts.HeartbeatInterval)}
	if err := st.Put(ctx, e); err != nil {
		a.log.Warn("admin: heartbeat: store", "err", err)
		return
	}
	if feed, ok := st.(cache.ChangeFeed); ok {
		if err := feed.Publish(ctx, cache.Change{Key: key, Version: version, Origin: g.Owner, At: now}); err != nil {
			a.log.Warn("admin: heartbeat: publish", "err", err)
		}
	}
}

// remove deletes this gateway's heartbeat row.
func (h *heartbeat) remove(ctx context.Context) {
	a := h.a
	now := a.opts.Clock.Now()
	key := heartbeatPrefix + a.c.Owner()
	if err := a.c.Store().Delete(ctx, key, uint64(now.UnixMicro())); err != nil {
		a.log.Warn("admin: heartbeat: remove", "err", err)
	}
}

// cluster lists the gateways whose heartbeat the store holds, this one
// first.
func (a *Console) cluster(ctx context.Context, s snapshot) ([]Gateway, bool) {
	now := a.opts.Clock.Now()
	self := a.beat.self(now, s)
	out := []Gateway{self}
	st := a.c.Store()
	feed, ok := st.(cache.ChangeFeed)
	if !ok || a.opts.HeartbeatInterval < 0 {
		return out, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	changes, err := feed.Changes(ctx, now.Add(-3*a.opts.HeartbeatInterval))
	if err != nil {
		a.log.Warn("admin: cluster: change feed", "err", err)
		return out, true
	}
	seen := map[string]bool{self.Owner: true}
	for _, ch := range changes {
		if !strings.HasPrefix(ch.Key, heartbeatPrefix) || seen[ch.Key[len(heartbeatPrefix):]] {
			continue
		}
		seen[ch.Key[len(heartbeatPrefix):]] = true
		e, err := st.Get(ctx, ch.Key)
		if err != nil {
			if !errors.Is(err, cache.ErrNotFound) {
				a.log.Warn("admin: cluster: heartbeat", "key", ch.Key, "err", err)
			}
			continue
		}
		var g Gateway
		if json.Unmarshal(e.Value, &g) == nil {
			out = append(out, g)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Owner < out[1+j].Owner })
	return out, true
}

func (a *Console) handleCluster(w http.ResponseWriter, r *http.Request) {
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "could not read the metrics")
		return
	}
	gws, shared := a.cluster(r.Context(), s)
	writeJSON(w, http.StatusOK, map[string]any{"gateways": gws, "sharedStore": shared})
}
