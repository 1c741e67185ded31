package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Swept is what one Sweep did.
type Swept struct {
	// Examined counts the cache_entries rows read; Entries those deleted
	// (values past their hard expiry, tombstones past TombstoneTTL).
	Examined, Entries int
	// Leases counts the leases deleted (run out).
	Leases int
	// Wrapped reports that the walk reached the last key and starts from
	// the first one next time.
	Wrapped bool
}

// Sweep deletes what ran out, in bounded batches, so that the tables do not
// grow without bound under a miss storm of distinct keys: entries past
// their hard expiry, tombstones past TombstoneTTL, and leases that ran out
// (a gateway that died holding them, and the scheduler's slot leases,
// which are never released). Done deletes a queue row when its refresh is
// done, so the queue holds no finished rows to sweep; poisoned rows stay
// until an operator removes them (kck queue).
//
// Entries are found by walking the primary key, SweepBatch keys per
// statement and at most SweepMaxRows per Sweep, going on after the last
// key the previous Sweep of this Store reached: the table has no index on
// expires_at, which would cost every refresh of a product with a TTL its
// heap-only update (see the package doc). A full walk of N keys takes
// N / SweepMaxRows sweeps. Each statement is its own short transaction and
// deletes a row only if it is still expired when locked, so a value
// written meanwhile stays.
//
// Run it from one gateway of the cluster at a time: the gateway's
// scheduler runs it under a slot lease every SweepInterval.
func (s *Store) Sweep(ctx context.Context) (Swept, error) {
	var out Swept
	entries := pgx.Identifier{s.cfg.Schema, "cache_entries"}.Sanitize()
	leases := pgx.Identifier{s.cfg.Schema, "leases"}.Sanitize()
	sweepEntries := `WITH b AS (SELECT key, expires_at FROM ` + entries + ` WHERE key > $1 ORDER BY key LIMIT $2),
		d AS (DELETE FROM ` + entries + ` WHERE key IN (SELECT key FROM b WHERE expires_at <= $3) AND expires_at <= $3 RETURNING 1)
		SELECT (SELECT max(key) FROM b), (SELECT count(*) FROM b), (SELECT count(*) FROM d)`
	after := ""
	if p := s.sweepAfter.Load(); p != nil {
		after = *p
	}
	for out.Examined < s.cfg.SweepMaxRows {
		var (
			last       pgtype.Text
			seen, gone int
			batch      = min(s.cfg.SweepBatch, s.cfg.SweepMaxRows-out.Examined)
		)
		s.writes.Add(1)
		err := s.pool.QueryRow(ctx, sweepEntries, after, batch, time.Now()).Scan(&last, &seen, &gone)
		if err != nil {
			return out, fmt.Errorf("postgres sweep: %w", unavailable(err))
		}
		out.Examined += seen
		out.Entries += gone
		if !last.Valid || seen < batch {
			after, out.Wrapped = "", true
			break
		}
		after = last.String
	}
	s.sweepAfter.Store(&after)

	// Leases: the table holds the leases in use and those that ran out
	// since the last sweep, so a plain scan for expired ones is cheap.
	sweepLeases := `WITH d AS (DELETE FROM ` + leases + ` WHERE name IN
			(SELECT name FROM ` + leases + ` WHERE expires_at <= clock_timestamp() LIMIT $1)
			AND expires_at <= clock_timestamp() RETURNING 1)
		SELECT count(*) FROM d`
	for out.Leases < s.cfg.SweepMaxRows {
		var gone int
		s.writes.Add(1)
		if err := s.pool.QueryRow(ctx, sweepLeases, s.cfg.SweepBatch).Scan(&gone); err != nil {
			return out, fmt.Errorf("postgres sweep leases: %w", unavailable(err))
		}
		out.Leases += gone
		if gone < s.cfg.SweepBatch {
			break
		}
	}
	return out, nil
}
