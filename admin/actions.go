package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/queue"
)

// Target names the keys an action touches: one key, every stored key of a
// product, or every stored key with a prefix. Confirm must equal the
// number of keys when there is more than one.
type Target struct {
	Key     string `json:"key,omitempty"`
	Product string `json:"product,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
	Confirm int    `json:"confirm,omitempty"`
	// DryRun answers how many keys the action would touch (and a sample),
	// touching none: the page asks it first, to confirm with the count.
	DryRun bool `json:"dryRun,omitempty"`
}

// Outcome is an action's answer.
type Outcome struct {
	Action string   `json:"action"`
	Keys   int      `json:"keys"`
	Done   int      `json:"done"`
	Failed []Failed `json:"failed"`
	// Versions are the new versions of refreshed keys (up to 100).
	Versions map[string]uint64 `json:"versions,omitempty"`
	// Warmed is the warm action's report.
	Warmed *WarmOutcome `json:"warmed,omitempty"`
	// DryRun: nothing was done; Sample lists up to 20 of the keys.
	DryRun bool     `json:"dryRun,omitempty"`
	Sample []string `json:"sample,omitempty"`

	dryKeys []string // a dry run's single key
}

// Failed is one key an action could not do.
type Failed struct {
	Key     string `json:"key"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WarmOutcome summarises scheduler.WarmReport.
type WarmOutcome struct {
	Keys    int     `json:"keys"`
	Failed  int     `json:"failed"`
	Seconds float64 `json:"seconds"`
}

// errConfirm is answered 409 with the count and a sample of the keys.
type errConfirm struct {
	keys []string
	what string // "warm": confirm the product, not a count
}

func (e *errConfirm) Error() string {
	if e.what == "warm" {
		return "warming touches every key the product declares: send confirm=1 to go ahead"
	}
	return fmt.Sprintf("this touches %d keys: send confirm=%d to go ahead", len(e.keys), len(e.keys))
}

// clientError is a bad request (400) in the caller's words.
type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

type actionFunc func(ctx context.Context, t Target, who string) (Outcome, error)

// action decodes a Target, runs fn, logs who did what, and answers.
func (a *Console) action(fn actionFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !apierror.IsJSON(r) {
			// See apierror.IsJSON: no other site acts through a browser.
			writeError(w, http.StatusUnsupportedMediaType, apierror.BadUserInput, "Content-Type must be application/json")
			return
		}
		var t Target
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			writeError(w, http.StatusBadRequest, apierror.BadUserInput, "body: a JSON object with key, product or prefix (and confirm): "+err.Error())
			return
		}
		who := caller(r)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		name := strings.TrimPrefix(r.URL.Path, "/admin/api/")
		if t.DryRun {
			// Resolve the keys as the action would, and stop there: a
			// count to confirm is the answer, not an error.
			t.Confirm = -1
		}
		out, err := fn(ctx, t, who)
		var dry *errConfirm
		if t.DryRun && (err == nil || errors.As(err, &dry)) {
			if dry == nil {
				dry = &errConfirm{keys: out.dryKeys}
			}
			writeJSON(w, http.StatusOK, Outcome{Action: name, Keys: len(dry.keys), DryRun: true, Failed: []Failed{}, Sample: dry.keys[:min(len(dry.keys), 20)]})
			return
		}
		var ce *errConfirm
		var bad *clientError
		var nq *notQueued
		switch {
		case errors.As(err, &nq):
			writeError(w, http.StatusNotFound, apierror.NotFound, nq.Error())
			return
		case errors.As(err, &ce):
			sample := ce.keys[:min(len(ce.keys), 20)]
			writeJSON(w, http.StatusConflict, map[string]any{
				"error": map[string]string{"code": "CONFIRM", "message": ce.Error()},
				"keys":  len(ce.keys), "sample": sample,
			})
			return
		case errors.As(err, &bad):
			writeError(w, http.StatusBadRequest, apierror.BadUserInput, bad.msg)
			return
		case err != nil:
			cls := apierror.Classify(err)
			if cls.Status >= 500 {
				a.log.Error("admin action failed", "action", name, "by", who, "target", t.describe(), "err", err)
			}
			writeError(w, cls.Status, cls.Code, cls.Message)
			return
		}
		a.log.Info("admin action", "action", name, "by", who, "remote", r.RemoteAddr, "target", t.describe(),
			"keys", out.Keys, "done", out.Done, "failed", len(out.Failed))
		writeJSON(w, http.StatusOK, out)
	}
}

// caller names who asked: the token's subject, or, with auth off, that
// nobody was checked (and from where).
func caller(r *http.Request) string {
	if p := auth.PrincipalFrom(r.Context()); p != nil {
		if p.Subject != "" {
			return "sub:" + p.Subject
		}
		return "token without sub"
	}
	return "anonymous (auth off)"
}

func (t Target) describe() string {
	switch {
	case t.Key != "":
		return "key " + t.Key
	case t.Product != "":
		return "product " + t.Product
	case t.Prefix != "":
		return "prefix " + t.Prefix
	}
	return "nothing"
}

// keys resolves t to canonical keys: for a product or a prefix, the keys
// stored (a scan of the store, like kck invalidate --prefix) and those in
// this gateway's in-process tier. More than one needs Confirm.
func (a *Console) keys(ctx context.Context, t Target) ([]string, error) {
	n := 0
	for _, s := range []string{t.Key, t.Product, t.Prefix} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return nil, &clientError{"name exactly one of key, product or prefix"}
	}
	reg := a.c.Registry()
	if t.Key != "" {
		k, err := reg.ParseKey(t.Key)
		if err != nil {
			return nil, err
		}
		return []string{k.String()}, nil
	}
	prefix := t.Prefix
	if t.Product != "" {
		p := reg.Product(t.Product)
		if p == nil {
			return nil, &clientError{fmt.Sprintf("no product named %q", t.Product)}
		}
		if len(p.KeyParams()) == 0 {
			return []string{p.Name}, nil
		}
		prefix = p.Name + "/"
	}
	set := map[string]struct{}{}
	name, _, _ := strings.Cut(prefix, "/")
	for _, k := range a.c.Keys(name) {
		if strings.HasPrefix(k, prefix) {
			set[k] = struct{}{}
		}
	}
	if sc, ok := a.c.Store().(cache.Scanner); ok {
		err := sc.Scan(ctx, func(e cache.Entry) error {
			if strings.HasPrefix(e.Key, prefix) && !strings.HasPrefix(e.Key, heartbeatPrefix) {
				set[e.Key] = struct{}{}
				if len(set) > a.opts.MaxKeys {
					return errTooMany
				}
			}
			return nil
		})
		if errors.Is(err, errTooMany) {
			return nil, &clientError{fmt.Sprintf("more than %d keys match %q: name a narrower prefix", a.opts.MaxKeys, prefix)}
		}
		if err != nil {
			return nil, fmt.Errorf("admin: scan the store: %w", err)
		}
	}
	if len(set) > a.opts.MaxKeys {
		return nil, &clientError{fmt.Sprintf("more than %d keys match %q: name a narrower prefix", a.opts.MaxKeys, prefix)}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 1 && t.Confirm != len(keys) {
		return nil, &errConfirm{keys: keys}
	}
	return keys, nil
}

var errTooMany = errors.New("too many keys")

func failure(key string, err error) Failed {
	cls := apierror.Classify(err)
	return Failed{Key: key, Code: cls.Code, Message: cls.Message}
}

func (a *Console) refresh(ctx context.Context, t Target, _ string) (Outcome, error) {
	keys, err := a.keys(ctx, t)
	if err != nil || t.DryRun {
		return Outcome{dryKeys: keys}, err
	}
	out := Outcome{Action: "refresh", Keys: len(keys), Failed: []Failed{}, Versions: map[string]uint64{}}
	for _, k := range keys {
		r, err := a.c.Refresh(ctx, k)
		if err != nil {
			if len(keys) == 1 {
				return Outcome{}, err
			}
			out.Failed = append(out.Failed, failure(k, err))
			continue
		}
		out.Done++
		if len(out.Versions) < 100 {
			out.Versions[k] = r.Version
		}
	}
	return out, nil
}

func (a *Console) invalidate(ctx context.Context, t Target, _ string) (Outcome, error) {
	keys, err := a.keys(ctx, t)
	if err != nil || t.DryRun {
		return Outcome{dryKeys: keys}, err
	}
	out := Outcome{Action: "invalidate", Keys: len(keys), Failed: []Failed{}}
	for _, k := range keys {
		if err := a.c.Invalidate(ctx, k); err != nil {
			if len(keys) == 1 {
				return Outcome{}, err
			}
			out.Failed = append(out.Failed, failure(k, err))
			continue
		}
		out.Done++
	}
	return out, nil
}

// warm computes the keys a product declares to warm; it touches many keys,
// so it needs confirm=1 (one product) whatever their number.
func (a *Console) warm(ctx context.Context, t Target, _ string) (Outcome, error) {
	if t.Product == "" || t.Key != "" || t.Prefix != "" {
		return Outcome{}, &clientError{"warm names a product"}
	}
	if a.c.Registry().Product(t.Product) == nil {
		return Outcome{}, &clientError{fmt.Sprintf("no product named %q", t.Product)}
	}
	if a.opts.Warm == nil {
		return Outcome{}, &clientError{"this gateway runs no scheduler: nothing declares what to warm"}
	}
	if t.Confirm != 1 || t.DryRun {
		// The number of keys is known only once the generators ran: the
		// confirmation is of the product, so confirm=1.
		return Outcome{}, &errConfirm{keys: []string{t.Product + ": every key it declares to warm"}, what: "warm"}
	}
	rep, err := a.opts.Warm(ctx, t.Product)
	if err != nil && rep.Keys == 0 {
		return Outcome{}, err
	}
	w := &WarmOutcome{Keys: rep.Keys, Failed: rep.Failed, Seconds: rep.Elapsed.Seconds()}
	out := Outcome{Action: "warm", Keys: rep.Keys, Done: rep.Keys - rep.Failed, Failed: []Failed{}, Warmed: w}
	if err != nil {
		out.Failed = append(out.Failed, failure(t.Product, err))
	}
	return out, nil
}

func (a *Console) queueKey(t Target) (string, error) {
	if a.opts.Queue == nil {
		return "", &clientError{"this gateway has no refresh queue"}
	}
	if t.Key == "" || t.Product != "" || t.Prefix != "" {
		return "", &clientError{"name the queued key"}
	}
	return t.Key, nil
}

// queueRetry gives a queued key (a poisoned one, typically) a fresh start:
// removed and queued again with its attempts reset, as kck queue retry does.
func (a *Console) queueRetry(ctx context.Context, t Target, _ string) (Outcome, error) {
	key, err := a.queueKey(t)
	if err != nil || t.DryRun {
		return Outcome{dryKeys: []string{key}}, err
	}
	if err := a.dequeue(ctx, key); err != nil {
		return Outcome{}, err
	}
	if err := a.opts.Queue.Enqueue(ctx, key, a.opts.Clock.Now()); err != nil {
		return Outcome{}, err
	}
	return Outcome{Action: "queue/retry", Keys: 1, Done: 1, Failed: []Failed{}}, nil
}

// dequeue removes a key that is queued; notQueued when it is not.
func (a *Console) dequeue(ctx context.Context, key string) error {
	if _, err := a.opts.Queue.Get(ctx, key); err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			return &notQueued{key}
		}
		return err
	}
	return a.opts.Queue.Remove(ctx, key)
}

func (a *Console) queueRemove(ctx context.Context, t Target, _ string) (Outcome, error) {
	key, err := a.queueKey(t)
	if err != nil || t.DryRun {
		return Outcome{dryKeys: []string{key}}, err
	}
	if err := a.dequeue(ctx, key); err != nil {
		return Outcome{}, err
	}
	return Outcome{Action: "queue/remove", Keys: 1, Done: 1, Failed: []Failed{}}, nil
}

// KeyInfo is GET /admin/api/key?key=K: what this gateway and the store hold.
type KeyInfo struct {
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value"`
	Version    uint64          `json:"version"`
	ComputedAt time.Time       `json:"computedAt"`
	StaleAt    *time.Time      `json:"staleAt"`
	ExpiresAt  *time.Time      `json:"expiresAt"`
	InMemory   bool            `json:"inMemory"`
	Dependents []string        `json:"dependents"`
	Queued     *QueuedKey      `json:"queued"`
}

// QueuedKey is the key's refresh-queue row.
type QueuedKey struct {
	Requests  int64  `json:"requests"`
	Attempts  int    `json:"attempts"`
	Poisoned  bool   `json:"poisoned"`
	LastError string `json:"lastError"`
}

// maxValueBytes bounds the value a lookup returns; a larger one is cut and
// sent as a JSON string saying so.
const maxValueBytes = 256 << 10

func (a *Console) handleKey(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "give ?key=")
		return
	}
	k, err := a.c.Registry().ParseKey(key)
	if err != nil {
		cls := apierror.Classify(err)
		writeError(w, cls.Status, cls.Code, cls.Message)
		return
	}
	canonical := k.String()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	e, inMem, err := a.c.Lookup(ctx, canonical)
	if err != nil {
		if errors.Is(err, cache.ErrNotFound) {
			writeError(w, http.StatusNotFound, apierror.NotFound, canonical+" is not cached (no read computed it yet, or it was invalidated)")
			return
		}
		cls := apierror.Classify(err)
		writeError(w, cls.Status, cls.Code, cls.Message)
		return
	}
	info := KeyInfo{Key: canonical, Value: e.Value, Version: e.Version, ComputedAt: e.ComputedAt.UTC(), InMemory: inMem,
		Dependents: append([]string{}, a.c.Dependents(canonical)...)}
	if len(e.Value) > maxValueBytes {
		info.Value, _ = json.Marshal(fmt.Sprintf("(%d bytes; the first %d shown) %s", len(e.Value), 1024, e.Value[:1024]))
	}
	if !e.StaleAt.IsZero() {
		t := e.StaleAt.UTC()
		info.StaleAt = &t
	}
	if !e.ExpiresAt.IsZero() {
		t := e.ExpiresAt.UTC()
		info.ExpiresAt = &t
	}
	if a.opts.Queue != nil {
		if it, err := a.opts.Queue.Get(ctx, canonical); err == nil {
			info.Queued = &QueuedKey{Requests: it.Requests, Attempts: it.Attempts, Poisoned: it.Poisoned, LastError: it.LastError}
		}
	}
	writeJSON(w, http.StatusOK, info)
}

// notQueued is a 404 for a queue action on a key not in the queue.
type notQueued struct{ key string }

func (e *notQueued) Error() string { return e.key + " is not in the refresh queue" }

// GraphNode is a node of the dependency graph: a product or a source table.
type GraphNode struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // product, source
}

// GraphEdge says From is read by To (or From's change refreshes To).
type GraphEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Why: "reads" (a primer was seen reading it), "source" (a source
	// table), "after_primes" (a declared refresh rule).
	Why string `json:"why"`
}

func (a *Console) handleGraph(w http.ResponseWriter, _ *http.Request) {
	nodes := []GraphNode{}
	edges := []GraphEdge{}
	seen := map[string]bool{}
	add := func(id, kind string) {
		if !seen[kind+id] {
			seen[kind+id] = true
			nodes = append(nodes, GraphNode{ID: id, Kind: kind})
		}
	}
	for _, p := range a.c.Registry().Products() {
		add(p.Name, "product")
	}
	deps := a.c.ProductDependencies()
	froms := make([]string, 0, len(deps))
	for f := range deps {
		froms = append(froms, f)
	}
	sort.Strings(froms)
	for _, from := range froms {
		for _, to := range deps[from] {
			edges = append(edges, GraphEdge{From: from, To: to, Why: "reads"})
		}
	}
	for _, p := range a.c.Registry().Products() {
		d := a.declared(p)
		for _, src := range d.Sources {
			table, _, _ := strings.Cut(src, " ")
			add(table, "source")
			edges = append(edges, GraphEdge{From: table, To: p.Name, Why: "source"})
		}
		for _, tpl := range d.AfterPrimes {
			from, _, _ := strings.Cut(tpl, "/")
			edges = append(edges, GraphEdge{From: from, To: p.Name, Why: "after_primes"})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes, "edges": edges})
}
