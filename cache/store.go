package cache

import (
	"context"
	"errors"
	"time"
)

// Entry is one stored product value.
type Entry struct {
	Key string
	// Value is the product as JSON. Readers share it: never modify it.
	Value []byte
	// Version orders writes of one key. It is a timestamp in microseconds,
	// taken when the computation started, so a slow primer never overwrites a
	// value computed after it started, in this gateway or another.
	Version uint64
	// ComputedAt is when the value was computed.
	ComputedAt time.Time
	// StaleAt is the soft expiry: from then on the value is served flagged
	// stale while a refresh runs. Zero means never.
	StaleAt time.Time
	// ExpiresAt is the hard expiry: from then on the value is gone. Zero
	// means never.
	ExpiresAt time.Time

	// reads are the counters of the entry's product, set when it enters
	// the in-process tier (stores ignore it).
	reads *productReads
	// failedRefreshes counts the refreshes of this version that failed in
	// a row, and retryAt is when a read may start the next one (see
	// Cache.keepStale); both only on in-process copies.
	failedRefreshes int
	retryAt         time.Time
}

// Expired reports whether e is past its hard expiry at now.
func (e *Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// Stale reports whether e is past its soft expiry at now.
func (e *Entry) Stale(now time.Time) bool {
	return !e.StaleAt.IsZero() && !now.Before(e.StaleAt)
}

// ErrNotFound is returned by Store.Get for a key with no live entry.
var ErrNotFound = errors.New("not found")

// Store is where computed products live, shared by every gateway that uses
// the same backend. Implementations must be safe for concurrent use and pass
// cachetest.Run unchanged.
//
// The contract:
//   - Get returns the live entry with the highest version put for the key, or
//     an error wrapping ErrNotFound (never an entry past its ExpiresAt).
//   - Put stores e unless an entry with an equal or higher version is stored
//     (or was deleted at an equal or higher version): versions never go
//     backwards, whichever gateway writes last. An entry whose ExpiresAt has
//     passed is not stored.
//   - Delete removes the key's entry if its version is at most version.
//   - Acquire takes the lease name for owner for ttl and reports whether it
//     got it. A lease held by another owner and not yet run out is refused;
//     the same owner acquiring again extends it. Release gives it up (only
//     if owner holds it). Leases deduplicate work across processes.
//   - Ping reports whether the backend answers.
type Store interface {
	Get(ctx context.Context, key string) (Entry, error)
	Put(ctx context.Context, e Entry) error
	Delete(ctx context.Context, key string, version uint64) error
	Acquire(ctx context.Context, lease, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, lease, owner string) error
	Ping(ctx context.Context) error
	Close() error
}

// NewPutter is implemented by stores that can write the first entry of a
// key in fewer round trips than Put. The cache calls PutNew only when it has
// just read the key and found nothing, while it holds the key's lease (or
// its warm bucket's): then Put's guard against replacing an equal version
// (Cassandra reads the stored version first, since its tie-break between
// equal write timestamps is by cell contents) has nothing to guard. PutNew
// keeps the rest of Put's contract: a higher version stored meanwhile still
// wins, and an entry past its ExpiresAt is not stored.
type NewPutter interface {
	PutNew(ctx context.Context, e Entry) error
}
