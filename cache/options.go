package cache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/primers"
)

// Clock tells the time. Tests inject a fake one so that expiry needs no sleep.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Options configure a Cache. The zero value of each optional field takes the
// default from WithDefaults.
type Options struct {
	// Registry declares the products. Required.
	Registry *primers.Registry
	// Store is the shared tier. Required.
	Store Store
	// MaxMemoryBytes bounds the in-process tier (keys plus values plus a
	// fixed overhead per entry). Default 256 MiB.
	MaxMemoryBytes uint64
	// Clock defaults to the wall clock.
	Clock Clock
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Owner names this process in leases. Default: host, pid and a random suffix.
	Owner string
	// LeaseTTL bounds how long a crashed gateway can hold up a key's
	// computation elsewhere. Default 30 s.
	LeaseTTL time.Duration
	// PrimerTimeout bounds one primer run. Default 30 s.
	PrimerTimeout time.Duration
	// PollInterval is how often a gateway waiting on another's lease looks
	// for the value. Default 20 ms.
	PollInterval time.Duration
	// BackgroundRefreshes bounds concurrent refreshes of stale values.
	// Default 4.
	BackgroundRefreshes int
	// Bus, when set, is the cluster's change bus: the cache announces its
	// writes on it and applies the other gateways' (see Bus). The caller
	// opens and closes it. Nil: a lone gateway.
	Bus Bus
	// BusInlineBytes is the largest value announced with its change, so
	// that other gateways need not read the store for it. Default 64 KiB;
	// negative announces versions only.
	BusInlineBytes int
	// NegativeTTL is how long a key whose primer found no data
	// (primers.ErrNoData) or refused its parameters (primers.ErrBadInput)
	// keeps that answer without running the primer again. A value stored
	// for the key ends it at once. Default 5 s; negative disables it.
	NegativeTTL time.Duration
	// NegativeCacheBytes bounds those remembered answers. Default 4 MiB.
	NegativeCacheBytes uint64
	// PrimerLogInterval is the shortest time between two "primer failed"
	// log lines of one product (the metric counts every failure).
	// Default 10 s.
	PrimerLogInterval time.Duration
	// TracerProvider, when set, traces the cache's work: under the caller's
	// span, when that one is recorded (a sampled trace), a span for each
	// read of the in-process tier and of the store, each compute lease
	// (waited for and held), each primer run and each store write; and a
	// trace of its own for each refresh nobody waits for (a stale value's,
	// a dependency's, a source change handed to this gateway), linked to
	// what caused it. Nil: no tracing, and reads cost what they cost
	// without it.
	TracerProvider trace.TracerProvider
	// OnStored, when set, is called after this gateway stores a new value of
	// a key (computed, refreshed, augmented or set). It runs on the caller's
	// goroutine: start your own work. SQL products' after_primes rules use it.
	OnStored func(key string)
}

// WithDefaults returns o with defaults filled in.
func (o Options) WithDefaults() Options {
	if o.MaxMemoryBytes == 0 {
		o.MaxMemoryBytes = 256 << 20
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Owner == "" {
		o.Owner = NewOwner()
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.PrimerTimeout == 0 {
		o.PrimerTimeout = 30 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	if o.BusInlineBytes == 0 {
		o.BusInlineBytes = 64 << 10
	}
	if o.BackgroundRefreshes == 0 {
		o.BackgroundRefreshes = 4
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.NegativeCacheBytes == 0 {
		o.NegativeCacheBytes = 4 << 20
	}
	if o.PrimerLogInterval == 0 {
		o.PrimerLogInterval = 10 * time.Second
	}
	return o
}

// validate checks o as given, before defaults: a rule between two fields
// applies to the values the cache will run with, and the rule between
// LeaseTTL and PrimerTimeout to those the caller chose.
func (o Options) validate() error {
	var errs []error
	if o.Registry == nil {
		errs = append(errs, errors.New("Registry is required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if o.LeaseTTL < 0 || o.PrimerTimeout < 0 || o.PollInterval < 0 || o.BackgroundRefreshes < 0 || o.PrimerLogInterval < 0 {
		errs = append(errs, errors.New("durations and counts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache options: %w", err)
	}
	// A primer still running when its lease runs out lets another gateway
	// take the lease and compute the same key: the lease must outlast the
	// longest run, which PrimerTimeout bounds. Checked when both are set,
	// since a gateway that sets only the lease (kck serve --compute-lease)
	// has always run with the default timeout.
	if o.LeaseTTL > 0 && o.PrimerTimeout > 0 && o.LeaseTTL < o.PrimerTimeout {
		errs = append(errs, fmt.Errorf("LeaseTTL (%v) must be at least PrimerTimeout (%v): a primer still running when its lease runs out lets another gateway compute the same key", o.LeaseTTL, o.PrimerTimeout))
	}
	d := o.WithDefaults()
	if d.PollInterval >= d.LeaseTTL {
		errs = append(errs, fmt.Errorf("PollInterval (%v) must be shorter than LeaseTTL (%v): a gateway waiting on another's computation looks for its value every PollInterval", d.PollInterval, d.LeaseTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache options: %w", err)
	}
	return nil
}

// NewOwner names this process for leases and on the bus: host, pid and a
// random suffix, so that a restarted gateway is a new owner.
func NewOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
