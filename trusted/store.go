package trusted

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
)

// Mode is what the gateway does with a document that is not trusted.
type Mode uint8

// The modes.
const (
	// Off: trusted documents are not read; every document runs.
	Off Mode = iota
	// Log: every document runs; one that is not trusted is counted and
	// logged, once each.
	Log
	// Enforce: only trusted documents run; any other is refused with
	// PERSISTED_QUERY_NOT_ALLOWED (a caller with kck:admin may be let
	// through, Options.AdminAdHoc).
	Enforce
)

// ParseMode reads off, log or enforce.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "off", "":
		return Off, nil
	case "log":
		return Log, nil
	case "enforce":
		return Enforce, nil
	}
	return Off, fmt.Errorf("trusted documents mode %q: want off, log or enforce", s)
}

func (m Mode) String() string { return [...]string{"off", "log", "enforce"}[m] }

// Options configure a Store.
type Options struct {
	// Path is the manifest file.
	Path string
	// Mode is Log or Enforce.
	Mode Mode
	// AdminAdHoc lets callers with the scope kck:admin run documents that
	// are not trusted in Enforce mode (an operator's ad hoc queries).
	AdminAdHoc bool
	// PollInterval is how often the file is checked for a change (its
	// modification time and size). Default 2 s; SIGHUP (Reload) does not
	// wait for it.
	PollInterval time.Duration
	Logger       *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Store holds the current manifest of a file, replaced whole when the file
// changes and the new one parses and validates: a request sees the old
// manifest or the new one, never a mix and never none, so a reload drops
// no request. A manifest that fails keeps the old one in force (logged and
// counted).
type Store struct {
	opts   Options
	cur    atomic.Pointer[Manifest]
	schema atomic.Pointer[ast.Schema]
	log    *slog.Logger

	mu       sync.Mutex // one load at a time
	modTime  time.Time
	size     int64
	onChange []func()

	// seen remembers the unknown documents logged (by hash), bounded.
	seenMu sync.Mutex
	seen   map[string]struct{}
	full   bool

	outcomes *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	loaded   prometheus.Gauge

	stop chan struct{}
	wg   sync.WaitGroup
}

// maxSeen bounds the unknown documents remembered to log each once.
const maxSeen = 10_000

// Open reads the manifest at o.Path. It is validated against the schema
// when Bind gives one.
func Open(o Options) (*Store, error) {
	if o.Mode != Log && o.Mode != Enforce {
		return nil, fmt.Errorf("trusted: mode %v: a store is for log or enforce", o.Mode)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Store{opts: o, log: o.Logger, seen: map[string]struct{}{}, stop: make(chan struct{}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_trusted_documents_total",
			Help: "GraphQL documents by trust: trusted (in the manifest), unknown (not in it, run in log mode or by an admin), refused (enforce mode).",
		}, []string{"outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_trusted_documents_reloads_total",
			Help: "Reloads of the trusted documents manifest, by outcome (ok, failed: the previous one stays in force).",
		}, []string{"outcome"}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_trusted_documents", Help: "Documents in the trusted documents manifest in force.",
		}),
	}
	for _, l := range []string{"trusted", "unknown", "refused"} {
		s.outcomes.WithLabelValues(l)
	}
	for _, l := range []string{"ok", "failed"} {
		s.reloads.WithLabelValues(l)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.outcomes, s.reloads, s.loaded} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	if _, err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Mode is the store's mode.
func (s *Store) Mode() Mode { return s.opts.Mode }

// AdminAdHoc says whether kck:admin may run documents that are not trusted.
func (s *Store) AdminAdHoc() bool { return s.opts.AdminAdHoc }

// Current is the manifest in force.
func (s *Store) Current() *Manifest { return s.cur.Load() }

// Bind validates the manifest against the schema the gateway serves, and
// keeps the schema for reloads. Its error names every document that fails.
func (s *Store) Bind(schema *ast.Schema) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cur.Load().Validate(schema); err != nil {
		return fmt.Errorf("%s: %w", s.opts.Path, err)
	}
	s.schema.Store(schema)
	return nil
}

// OnChange registers f, called after each reload that replaced the
// manifest (the gateway drops the responses it keeps: one may be of a
// document no longer trusted).
func (s *Store) OnChange(f func()) {
	s.mu.Lock()
	s.onChange = append(s.onChange, f)
	s.mu.Unlock()
}

// Reload reads the file again now (SIGHUP). A manifest that does not parse
// or validate is an error, and the one in force stays.
func (s *Store) Reload() error {
	_, err := s.load(true)
	return err
}

// load reads the file when force or when it changed since the last load,
// and reports whether the manifest was replaced.
func (s *Store) load(force bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.cur.Load() == nil
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		return false, s.failed(first, fmt.Errorf("trusted documents: %w", err))
	}
	if !force && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return false, nil
	}
	f, err := os.Open(s.opts.Path)
	if err != nil {
		return false, s.failed(first, fmt.Errorf("trusted documents: %w", err))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	_ = f.Close()
	if err != nil {
		return false, s.failed(first, fmt.Errorf("trusted documents %s: %w", s.opts.Path, err))
	}
	s.modTime, s.size = fi.ModTime(), fi.Size()
	if old := s.cur.Load(); old != nil && bytes.Equal(data, old.raw) {
		return false, nil
	}
	m, err := Parse(data)
	if err != nil {
		return false, s.failed(first, fmt.Errorf("trusted documents %s: %w", s.opts.Path, err))
	}
	m.raw = data
	if schema := s.schema.Load(); schema != nil {
		if err := m.Validate(schema); err != nil {
			return false, s.failed(first, fmt.Errorf("trusted documents %s: %w", s.opts.Path, err))
		}
	}
	s.cur.Store(m)
	s.loaded.Set(float64(m.Len()))
	if !first {
		s.reloads.WithLabelValues("ok").Inc()
		s.log.Info("trusted documents reloaded", "path", s.opts.Path, "documents", m.Len())
		for _, f := range s.onChange {
			f()
		}
	}
	return true, nil
}

func (s *Store) failed(first bool, err error) error {
	if !first {
		// Logged before counted: whoever watches the count finds the log.
		s.log.Error("trusted documents not reloaded; the previous manifest stays in force", "path", s.opts.Path, "err", err)
		s.reloads.WithLabelValues("failed").Inc()
	}
	return err
}

// Start polls the file for changes until Stop.
func (s *Store) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.opts.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_, _ = s.load(false) // a failure is logged and counted
			case <-s.stop:
				return
			}
		}
	}()
}

// Stop ends polling and waits for it.
func (s *Store) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Trusted counts a trusted document.
func (s *Store) Trusted() { s.outcomes.WithLabelValues("trusted").Inc() }

// Refused counts a refused document.
func (s *Store) Refused() { s.outcomes.WithLabelValues("refused").Inc() }

// Unknown counts a document that is not trusted and runs, and logs it the
// first time (by its hash; up to maxSeen documents, then a line says the
// rest go unlogged).
func (s *Store) Unknown(hash, operationName string, admin bool) {
	s.outcomes.WithLabelValues("unknown").Inc()
	s.seenMu.Lock()
	_, seen := s.seen[hash]
	logIt, fullNow := !seen && !s.full, false
	if logIt {
		if len(s.seen) >= maxSeen {
			s.full, fullNow, logIt = true, true, false
		} else {
			s.seen[hash] = struct{}{}
		}
	}
	s.seenMu.Unlock()
	switch {
	case logIt:
		s.log.Warn("document not in the trusted documents manifest", "mode", s.opts.Mode.String(),
			"sha256", hash, "operation", shorten(operationName), "admin", admin)
	case fullNow:
		s.log.Warn("documents not in the trusted documents manifest: more than the ones logged; the rest are counted, not logged", "logged", maxSeen)
	}
}
