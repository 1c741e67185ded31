package queue

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kck-go/kck/primers"
)

// The row changes below are the queue's semantics. A backend reads a row,
// applies one of them and writes the row back atomically (with a new
// Version), so every backend behaves the same.

// Merge records a request for key at time at, from the trace trace (a
// traceparent, see TraceOf; "" keeps the row's), in it. A zero it (no row
// yet) becomes a new row.
func (c Config) Merge(it *Item, key string, at time.Time, trace string) {
	if trace != "" {
		// The latest: the refresh answers it for sure.
		defer func() { it.Trace = trace }()
	}
	if it.Key == "" {
		*it = Item{Key: key, FirstRequested: at, LastRequested: at, Requests: 1}
		return
	}
	it.Requests++
	if at.Before(it.FirstRequested) {
		it.FirstRequested = at
	}
	if at.After(it.LastRequested) {
		it.LastRequested = at
	}
	if it.Worker != "" && (it.FirstSinceClaim.IsZero() || at.Before(it.FirstSinceClaim)) {
		it.FirstSinceClaim = at
	}
}

// Expire ends a claim whose lease ran out at now: the worker is presumed
// dead, the attempt counts as a failure, and a row that reaches MaxAttempts
// this way is poisoned (a key that kills every worker that tries it must
// stop being tried). It reports whether it changed the row.
func (c Config) Expire(it *Item, now time.Time) bool {
	if it.Worker == "" || it.Claimed(now) {
		return false
	}
	it.Attempts++
	it.LastError = fmt.Sprintf("lease of worker %s ran out at %s", it.Worker, it.LeaseUntil.UTC().Format(time.RFC3339Nano))
	it.Poisoned = it.Attempts-it.Unavailable >= c.MaxAttempts
	clearClaim(it)
	return true
}

// Claimable reports whether a claim at now may take it. Apply Expire first.
func (c Config) Claimable(it *Item, now time.Time) bool {
	return !it.Poisoned && !it.Claimed(now) && !now.Before(it.NotBefore)
}

// Claim gives it to worker until now+leaseTTL.
func (c Config) Claim(it *Item, worker string, now time.Time, leaseTTL time.Duration) {
	it.Worker = worker
	it.ClaimedAt = now
	it.LeaseUntil = now.Add(leaseTTL)
	it.ClaimedRequests = it.Requests
	it.FirstSinceClaim = time.Time{}
}

// Done ends worker's successful refresh of the row it claimed at version.
// It reports whether the row should be removed; when requests were merged
// after the claim (the version moved), the row stays, unclaimed, holding
// only those requests: the refresh may have read the data before the change
// they announce.
func (c Config) Done(it *Item, worker string, version uint64) (remove bool, err error) {
	if it.Worker != worker {
		return false, fmt.Errorf("%w: %s is held by %q", ErrNotClaimed, it.Key, it.Worker)
	}
	if it.Version == version {
		return true, nil
	}
	it.Requests = max(1, it.Requests-it.ClaimedRequests)
	it.FirstRequested = it.FirstSinceClaim
	if it.FirstRequested.IsZero() {
		it.FirstRequested = it.LastRequested
	}
	it.Attempts, it.Unavailable = 0, 0
	it.NotBefore = time.Time{}
	it.LastError = ""
	clearClaim(it)
	return false, nil
}

// Release ends worker's failed refresh at now: the row waits for the
// backoff, or is poisoned after MaxAttempts failures or a permanent one.
// A failure because a dependency is unavailable (primers.ErrUnavailable)
// never poisons, and waits at most UnavailableBackoffMax. Requests merged
// meanwhile stay counted.
func (c Config) Release(it *Item, worker string, cause error, now time.Time) error {
	if it.Worker != worker {
		return fmt.Errorf("%w: %s is held by %q", ErrNotClaimed, it.Key, it.Worker)
	}
	it.Attempts++
	if cause != nil {
		it.LastError = cause.Error()
	} else {
		it.LastError = "refresh failed"
	}
	unavailable := errors.Is(cause, primers.ErrUnavailable) && !isPermanent(cause)
	if unavailable {
		it.Unavailable++
	}
	clearClaim(it)
	if isPermanent(cause) || it.Attempts-it.Unavailable >= c.MaxAttempts {
		it.Poisoned = true
		it.NotBefore = time.Time{}
		return nil
	}
	delay := c.Backoff(it.Attempts)
	if unavailable {
		delay = min(delay, UnavailableBackoffMax)
	}
	it.NotBefore = now.Add(delay)
	return nil
}

func clearClaim(it *Item) {
	it.Worker = ""
	it.ClaimedAt = time.Time{}
	it.LeaseUntil = time.Time{}
	it.ClaimedRequests = 0
	it.FirstSinceClaim = time.Time{}
}

// AddToStats counts it, read at now, into s. Backends build Stats with it.
func AddToStats(s *Stats, it *Item, now time.Time) {
	if it.Poisoned {
		s.Poisoned++
		if len(s.PoisonedKeys) < 100 {
			s.PoisonedKeys = append(s.PoisonedKeys, it.Key)
		}
		return
	}
	s.Depth++
	switch {
	case it.Claimed(now):
		s.Claimed++
	case now.Before(it.NotBefore):
		s.Delayed++
	default:
		s.claimable = append(s.claimable, *it)
	}
	if s.OldestRequest.IsZero() || it.FirstRequested.Before(s.OldestRequest) {
		s.OldestRequest = it.FirstRequested
	}
	s.MaxRequests = max(s.MaxRequests, it.Requests)
}

// SmallQueueFactor: a queue of at most SmallQueueFactor x batch claimable
// rows is "small" (KCK's rule).
const SmallQueueFactor = 100

// Select picks up to batch rows to claim from the claimable rows cands, in
// the order they should be refreshed, with KCK's rules:
//
//  1. a small queue (at most 100 x batch rows): most requested first;
//  2. else, when the request counts are close (max - min < 5): earliest
//     requested first;
//  3. else, when no key stands far above the average (max - average <= 3):
//     the earliest requested among the keys at or above the average (then,
//     if the batch is not full, the earliest of the others: KCK left the
//     batch short);
//  4. else earliest requested first.
//
// Ties go to the earlier first request, then to the key, so the choice is
// deterministic. Select does not modify cands' rows but may reorder cands.
func Select(cands []Item, batch int) []Item {
	if batch <= 0 || len(cands) == 0 {
		return nil
	}
	earliest := func(a, b Item) int {
		if c := a.FirstRequested.Compare(b.FirstRequested); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	}
	take := func(s []Item) []Item { return slices.Clone(s[:min(batch, len(s))]) }

	if len(cands) <= SmallQueueFactor*batch {
		slices.SortFunc(cands, func(a, b Item) int {
			if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
				return c
			}
			return earliest(a, b)
		})
		return take(cands)
	}
	lo, hi, sum := cands[0].Requests, cands[0].Requests, int64(0)
	for _, it := range cands {
		lo, hi, sum = min(lo, it.Requests), max(hi, it.Requests), sum+it.Requests
	}
	avg := float64(sum) / float64(len(cands))
	switch {
	case hi-lo < 5:
		slices.SortFunc(cands, earliest)
	case float64(hi)-avg <= 3:
		slices.SortFunc(cands, func(a, b Item) int {
			aAbove, bAbove := float64(a.Requests) >= avg, float64(b.Requests) >= avg
			if aAbove != bAbove {
				if aAbove {
					return -1
				}
				return 1
			}
			return earliest(a, b)
		})
	default:
		slices.SortFunc(cands, earliest)
	}
	return take(cands)
}

func isPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
