package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// ErrOtherGateway is the Lock error for a run whose slot another gateway
// holds: gocron skips the run.
var ErrOtherGateway = errors.New("another gateway runs this slot")

// SlotLocker is a gocron.Locker that lets one gateway of a cluster run each
// scheduled slot of a job. It takes the store lease "job/NAME/SLOT" and
// keeps it (never releasing it early) for two periods, and at least a minute.
//
// Why not a lock held while the job runs (gocron's plain distributed
// locker): gateways' tickers drift apart, so a fast job finishes on one
// gateway before another's ticker fires, and that one takes the free lock
// and runs the job again: a job of every 10 s ran up to once per gateway per
// 10 s. Keyed by the slot and held past it, the lease makes the late
// gateway's attempt at the same slot fail, however short the job.
type SlotLocker struct {
	store cache.Store
	owner string
	clock cache.Clock

	mu     sync.RWMutex
	jobs   map[string]schedule
	ran    map[string]time.Time // job -> the last slot this gateway took
	taking map[string]*sync.Mutex
	onSkip func(job string)
}

var _ gocron.Locker = (*SlotLocker)(nil)

// NewSlotLocker returns a locker taking leases in store as owner, with
// slots computed on clock (nil: the wall clock).
func NewSlotLocker(store cache.Store, owner string, clock cache.Clock) *SlotLocker {
	if clock == nil {
		clock = cache.SystemClock{}
	}
	return &SlotLocker{store: store, owner: owner, clock: clock, jobs: map[string]schedule{}, ran: map[string]time.Time{},
		taking: map[string]*sync.Mutex{}}
}

// add declares job name's already checked schedule.
func (l *SlotLocker) add(name string, s schedule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.jobs[name] = s
	if l.taking[name] == nil {
		l.taking[name] = new(sync.Mutex)
	}
}

// Add declares the schedule of job name (cron expressions in UTC unless
// they say CRON_TZ=); Lock refuses jobs it does not know. A Scheduler adds
// its cluster-wide jobs itself.
func (l *SlotLocker) Add(name string, s primers.Schedule) error {
	sch, err := check(s, time.UTC, l.clock.Now())
	if err != nil {
		return err
	}
	l.add(name, sch)
	return nil
}

// Lock takes job name's current slot for this gateway, or fails with
// ErrOtherGateway. The returned Lock's Unlock does nothing: the lease must
// outlive the run (see the type's doc) and runs out by itself.
func (l *SlotLocker) Lock(ctx context.Context, name string) (gocron.Lock, error) {
	l.mu.RLock()
	s, ok := l.jobs[name]
	taking := l.taking[name]
	l.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("scheduler: job %q has no schedule in the locker", name)
	}
	// One attempt at a time per job on this gateway, from reading the last
	// slot taken to recording the new one: two attempts at the same slot
	// (a ticker firing again while a slow Acquire is under way) would both
	// pass the check below, and the store grants its holder the lease again.
	taking.Lock()
	defer taking.Unlock()
	slot, period := s.slot(l.clock.Now())
	// A ticker that fires again soon after a late run can land on the same
	// nearest slot; the store would grant it (the lease is ours already, and
	// Acquire extends its holder's lease), so the slot would run twice here.
	l.mu.RLock()
	last, took := l.ran[name]
	l.mu.RUnlock()
	if took && !slot.After(last) {
		return nil, fmt.Errorf("job %q slot %s already ran on this gateway: %w", name, slot.UTC().Format(time.RFC3339Nano), ErrOtherGateway)
	}
	// The lease must outlive the latest attempt at this slot, and a
	// gateway's attempt can come seconds late on a loaded machine (a slow
	// ticker, a Paxos round waiting on a busy node): a lease of 2 s let a late
	// gateway run a 1 s job's slot again. Its name is the slot's alone, so
	// holding it longer blocks no other run.
	got, err := l.store.Acquire(ctx, LeaseName(name, slot), l.owner, max(2*period, slotLeaseMin))
	if err != nil {
		// Without the store we cannot tell whether another gateway runs it:
		// skipping a run beats running it on every gateway.
		return nil, fmt.Errorf("scheduler: lease for job %q: %w", name, err)
	}
	if !got {
		if l.onSkip != nil {
			l.onSkip(name)
		}
		return nil, fmt.Errorf("job %q slot %s: %w", name, slot.UTC().Format(time.RFC3339Nano), ErrOtherGateway)
	}
	l.mu.Lock()
	if slot.After(l.ran[name]) {
		l.ran[name] = slot
	}
	l.mu.Unlock()
	return noUnlock{}, nil
}

// slotLeaseMin is the shortest a slot's lease is held.
const slotLeaseMin = time.Minute

// LeaseName is the store lease that one gateway holds for job name's slot.
func LeaseName(name string, slot time.Time) string {
	return "job/" + name + "/" + slot.UTC().Format(time.RFC3339Nano)
}

type noUnlock struct{}

func (noUnlock) Unlock(context.Context) error { return nil }
