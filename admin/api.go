package admin

import (
	"context"
	"encoding/json"
	"github.com/kck-go/kck/apierror"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/queue"
	"github.com/kck-go/kck/scheduler"
)

// The API's documents. Durations are in seconds (float), times RFC 3339.

// Product is one row of the products table.
type Product struct {
	Name   string    `json:"name"`
	Params []Param   `json:"params"`
	Policy Policy    `json:"policy"`
	Reads  Reads     `json:"reads"`
	Primer Primer    `json:"primer"`
	Miss   Latency   `json:"missLatency"`
	Fresh  Freshness `json:"freshness"`
	// ReadsFrom and ReadBy are the products its primer was seen reading,
	// and those seen reading it, in this gateway.
	ReadsFrom []string `json:"readsFrom"`
	ReadBy    []string `json:"readBy"`
}

// Param is a product parameter.
type Param struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Policy is what the product declares.
type Policy struct {
	TTL             float64  `json:"ttlSeconds"`
	SoftTTL         float64  `json:"softTtlSeconds"`
	FreshnessTarget float64  `json:"freshnessTargetSeconds"`
	Refresh         string   `json:"refresh"`
	Warm            []string `json:"warm"`
	WarmGenerated   bool     `json:"warmGenerated"`
	Domain          string   `json:"domain"`
	Sources         []string `json:"sources"`
	AfterPrimes     []string `json:"afterPrimes"`
	AfterUpdates    []string `json:"afterUpdates"`
	Auth            string   `json:"auth"`
	Augments        bool     `json:"augments"`
}

// Reads are kck_product_reads_total by outcome, with the share of reads
// each tier answered.
type Reads struct {
	HitMemory float64 `json:"hitMemory"`
	HitStore  float64 `json:"hitStore"`
	Stale     float64 `json:"stale"`
	Miss      float64 `json:"miss"`
	// MemoryRatio and StoreRatio are the shares of reads answered fresh
	// by each tier (null before any read).
	MemoryRatio *float64 `json:"memoryRatio"`
	StoreRatio  *float64 `json:"storeRatio"`
}

// Primer is kck_primer_runs_total, kck_primer_errors_total and
// kck_primer_duration_seconds of one product.
type Primer struct {
	Runs     float64   `json:"runs"`
	Errors   float64   `json:"errors"`
	Duration Histogram `json:"duration"`
}

// Latency is a histogram's p50 and p99 (seconds; null with no sample).
type Latency struct {
	Count uint64   `json:"count"`
	P50   *float64 `json:"p50"`
	P99   *float64 `json:"p99"`
}

// Freshness is what this gateway holds of a product.
type Freshness struct {
	// Instances is kck_product_values_held: the values in this gateway's
	// in-process tier.
	Instances float64 `json:"instances"`
	// OldestAge is kck_product_oldest_age_seconds.
	OldestAge float64 `json:"oldestAgeSeconds"`
	// BeyondTarget is kck_product_values_beyond_target (0 without a target);
	// OverTarget says the oldest value is older than the target.
	BeyondTarget float64 `json:"beyondTarget"`
	OverTarget   bool    `json:"overTarget"`
	// Refreshes are kck_refreshes_total by outcome.
	Refreshes   float64 `json:"refreshes"`
	RefreshFail float64 `json:"refreshFailures"`
}

// Overview is GET /admin/api/overview: everything the page shows but the
// cluster and the graph, from one Gather.
type Overview struct {
	At       time.Time `json:"at"`
	Gateway  Gateway   `json:"gateway"`
	Open     bool      `json:"open"`
	Totals   Totals    `json:"totals"`
	Products []Product `json:"products"`
	Queue    *Queue    `json:"queue"`
	Fresh    Lag       `json:"freshness"`
	Cost     Cost      `json:"cost"`
}

// Cost is what this gateway has asked of the store and the change bus
// since it started, so that the cost of a change can be read (compare two
// samples around a known number of changes; bench/cmd/scale does).
type Cost struct {
	// StoreOps is kck_store_operations_total by kind: read, write, lwt.
	StoreOps map[string]float64 `json:"storeOps"`
	// BusMessages is kck_bus_messages_total by direction and kind
	// ("sent change", "received assign", ...).
	BusMessages map[string]float64 `json:"busMessages"`
	// PrimerRuns is kck_primer_runs_total over every product.
	PrimerRuns float64 `json:"primerRuns"`
	// Following says this gateway follows the source tables' change log
	// for the cluster (kck_source_backlog_rows is its backlog).
	Following bool    `json:"following"`
	Backlog   float64 `json:"backlog"`
}

// Totals are the gateway-wide counters the charts are drawn from (the page
// takes rates between two samples).
type Totals struct {
	// Reads is kck_cache_reads_total by outcome.
	Reads map[string]float64 `json:"reads"`
	// PrimerRuns and PrimerSeconds are the count and sum of
	// kck_primer_duration_seconds over every product.
	PrimerRuns    uint64  `json:"primerRuns"`
	PrimerSeconds float64 `json:"primerSeconds"`
	PrimerErrors  float64 `json:"primerErrors"`
	// Refreshes is kck_refreshes_total{outcome="ok"} over every product.
	Refreshes float64 `json:"refreshes"`
}

// Lag is the freshness panel: how long changes take to reach values.
type Lag struct {
	// SourceToFresh is kck_source_fresh_lag_seconds: from a source change
	// received from Postgres to the refreshed value stored (empty without
	// SQL products).
	SourceToFresh Histogram `json:"sourceToFresh"`
	// Bus is kck_bus_lag_seconds: from another gateway announcing a change
	// to this one applying it.
	Bus Histogram `json:"bus"`
}

// Queue is the refresh queue as `kck queue` shows it.
type Queue struct {
	Depth         int      `json:"depth"`
	Claimed       int      `json:"claimed"`
	Delayed       int      `json:"delayed"`
	Poisoned      int      `json:"poisoned"`
	PoisonedKeys  []string `json:"poisonedKeys"`
	OldestRequest float64  `json:"oldestRequestAgeSeconds"`
	MaxRequests   int64    `json:"maxRequests"`
	Next          []string `json:"next"`
	// Claims and Retries are kck_queue_claims_total and the failed
	// refreshes of kck_queue_refreshes_total, on this gateway.
	Claims  float64 `json:"claims"`
	Retries float64 `json:"retries"`
	Error   string  `json:"error,omitempty"`
}

func (a *Console) handleIndex(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"routes": []string{
			"GET /admin/api/overview", "GET /admin/api/products", "GET /admin/api/queue",
			"GET /admin/api/cluster", "GET /admin/api/graph", "GET /admin/api/history", "GET /admin/api/key?key=K",
			"POST /admin/api/refresh", "POST /admin/api/invalidate", "POST /admin/api/warm",
			"POST /admin/api/queue/retry", "POST /admin/api/queue/remove",
		},
		"docs": "docs/admin.md",
	})
}

func (a *Console) handleOverview(w http.ResponseWriter, r *http.Request) {
	o, err := a.overview(r.Context())
	if err != nil {
		a.log.Error("admin: overview", "err", err)
		writeError(w, http.StatusInternalServerError, apierror.Internal, "could not read the metrics")
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (a *Console) handleProducts(w http.ResponseWriter, r *http.Request) {
	o, err := a.overview(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, apierror.Internal, "could not read the metrics")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": o.Products})
}

func (a *Console) handleQueue(w http.ResponseWriter, r *http.Request) {
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		writeError(w, http.StatusInternalServerError, apierror.Internal, "could not read the metrics")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": a.queue(r.Context(), s)})
}

func (a *Console) overview(ctx context.Context) (Overview, error) {
	s, err := gather(a.opts.Gatherer)
	if err != nil {
		return Overview{}, err
	}
	now := a.opts.Clock.Now()
	o := Overview{At: now.UTC(), Gateway: a.beat.self(now, s), Open: a.opts.Open}
	o.Totals.Reads = s.byLabel("kck_cache_reads_total", "outcome", nil)
	ph := s.histogram("kck_primer_duration_seconds", nil)
	o.Totals.PrimerRuns, o.Totals.PrimerSeconds = ph.Count, ph.Sum
	o.Totals.PrimerErrors = s.value("kck_primer_errors_total", nil)
	o.Totals.Refreshes = s.value("kck_refreshes_total", map[string]string{"outcome": "ok"})
	o.Fresh.SourceToFresh = s.histogram("kck_source_fresh_lag_seconds", nil)
	o.Fresh.Bus = s.histogram("kck_bus_lag_seconds", nil)
	o.Cost = Cost{StoreOps: s.byLabel("kck_store_operations_total", "kind", nil), BusMessages: map[string]float64{},
		PrimerRuns: s.value("kck_primer_runs_total", nil), Following: s.value("kck_leader", map[string]string{"job": "follow/source"}) > 0,
		Backlog: s.value("kck_source_backlog_rows", nil)}
	for _, dir := range []string{"sent", "received"} {
		for kind, n := range s.byLabel("kck_bus_messages_total", "kind", map[string]string{"direction": dir}) {
			o.Cost.BusMessages[dir+" "+kind] = n
		}
	}
	o.Products = a.products(s)
	o.Queue = a.queue(ctx, s)
	return o, nil
}

func (a *Console) products(s snapshot) []Product {
	var plans map[string]scheduler.Plan
	if a.opts.Plans != nil {
		plans = a.opts.Plans()
	}
	deps := a.c.ProductDependencies()
	readBy := deps
	readsFrom := map[string][]string{}
	for from, tos := range deps {
		for _, to := range tos {
			readsFrom[to] = append(readsFrom[to], from)
		}
	}
	var out []Product
	for _, p := range a.c.Registry().Products() {
		l := map[string]string{"product": p.Name}
		pr := Product{Name: p.Name, Params: []Param{}, ReadsFrom: sorted(readsFrom[p.Name]), ReadBy: sorted(readBy[p.Name])}
		for _, prm := range p.KeyParams() {
			pr.Params = append(pr.Params, Param{Name: prm.Name, Kind: prm.Kind.String()})
		}
		pr.Policy = Policy{
			TTL: p.TTL.Seconds(), SoftTTL: p.SoftTTL.Seconds(), FreshnessTarget: p.FreshnessTarget.Seconds(),
			Auth: authText(p.Auth), Augments: p.Augment != nil,
			Warm: []string{}, Sources: []string{}, AfterPrimes: []string{}, AfterUpdates: []string{},
		}
		if pl, ok := plans[p.Name]; ok {
			pr.Policy.Refresh = pl.Refresh
			pr.Policy.Warm = append(pr.Policy.Warm, pl.WarmKeys...)
			pr.Policy.WarmGenerated = pl.WarmGenerated
			if pl.DomainKey != "" {
				pr.Policy.Domain = pl.DomainKey + " (" + pl.DomainSchedule + ")"
			}
		}
		d := a.declared(p)
		pr.Policy.Sources = append(pr.Policy.Sources, d.Sources...)
		pr.Policy.AfterPrimes = append(pr.Policy.AfterPrimes, d.AfterPrimes...)
		pr.Policy.AfterUpdates = append(pr.Policy.AfterUpdates, d.AfterUpdates...)
		rd := s.byLabel("kck_product_reads_total", "outcome", l)
		pr.Reads = Reads{HitMemory: rd["hit_memory"], HitStore: rd["hit_store"], Stale: rd["stale"], Miss: rd["miss"]}
		if total := pr.Reads.HitMemory + pr.Reads.HitStore + pr.Reads.Stale + pr.Reads.Miss; total > 0 {
			m, st := pr.Reads.HitMemory/total, pr.Reads.HitStore/total
			pr.Reads.MemoryRatio, pr.Reads.StoreRatio = &m, &st
		}
		pr.Primer = Primer{
			Runs:     s.value("kck_primer_runs_total", l),
			Errors:   s.value("kck_primer_errors_total", l),
			Duration: s.histogram("kck_primer_duration_seconds", l),
		}
		mh := s.histogram("kck_product_miss_duration_seconds", l)
		pr.Miss = Latency{Count: mh.Count, P50: mh.P50, P99: mh.P99}
		pr.Fresh = Freshness{
			Instances:    s.value("kck_product_values_held", l),
			OldestAge:    s.value("kck_product_oldest_age_seconds", l),
			BeyondTarget: s.value("kck_product_values_beyond_target", l),
			Refreshes:    s.value("kck_refreshes_total", map[string]string{"product": p.Name, "outcome": "ok"}),
			RefreshFail:  s.value("kck_refreshes_total", map[string]string{"product": p.Name, "outcome": "failed"}),
		}
		pr.Fresh.OverTarget = p.FreshnessTarget > 0 && pr.Fresh.OldestAge > p.FreshnessTarget.Seconds()
		out = append(out, pr)
	}
	return out
}

func (a *Console) queue(ctx context.Context, s snapshot) *Queue {
	if a.opts.Queue == nil {
		return nil
	}
	q := &Queue{
		Claims:       s.value("kck_queue_claims_total", nil),
		Retries:      s.value("kck_queue_refreshes_total", map[string]string{"outcome": "failed"}),
		PoisonedKeys: []string{}, Next: []string{},
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := a.opts.Queue.Stats(ctx)
	if err != nil {
		a.log.Warn("admin: queue stats", "err", err)
		q.Error = "the queue did not answer"
		return q
	}
	fillQueue(q, st, a.opts.Clock.Now())
	return q
}

func fillQueue(q *Queue, st queue.Stats, now time.Time) {
	q.Depth, q.Claimed, q.Delayed, q.Poisoned = st.Depth, st.Claimed, st.Delayed, st.Poisoned
	q.PoisonedKeys = append(q.PoisonedKeys, st.PoisonedKeys...)
	q.OldestRequest = st.OldestAge(now).Seconds()
	q.MaxRequests = st.MaxRequests
	q.Next = append(q.Next, st.Next(20)...)
}

func authText(au primers.Auth) string {
	switch {
	case au.Public:
		return "public"
	case au.IsZero():
		return "any valid token"
	}
	var parts []string
	if len(au.Scopes) > 0 {
		parts = append(parts, "scope "+strings.Join(au.Scopes, ","))
	}
	binds := make([]string, 0, len(au.Bind))
	for prm, claim := range au.Bind {
		binds = append(binds, prm+"="+claim)
	}
	sort.Strings(binds)
	if len(binds) > 0 {
		parts = append(parts, "bind "+strings.Join(binds, ","))
	}
	if len(au.KeyBy) > 0 {
		parts = append(parts, "per user by "+strings.Join(au.KeyBy, ","))
	}
	return strings.Join(parts, "; ")
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError answers in the gateway's error shape (apierror.Write).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	apierror.Write(w, status, code, msg)
}
