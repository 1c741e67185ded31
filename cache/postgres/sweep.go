package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Swept is what one Sweep did.
type Swept struct {
	// Examined counts the rows read, in the three tables.
	Examined int
	// Entries counts the cache_entries rows deleted (values past their hard
	// expiry, tombstones past TombstoneTTL), Leases the leases (run out,
	// released or not, KeepDone ago), QueueRows the finished queue rows
	// (done KeepDone ago).
	Entries, Leases, QueueRows int
	// Wrapped reports that every walk reached its table's last key in this
	// Sweep (each starts again from its first key next time).
	Wrapped bool
}

// Sweep deletes what ran out, in bounded batches, so that the tables do not
// grow without bound under a miss storm of distinct keys or repeated
// refreshes: entries past their hard expiry, tombstones past TombstoneTTL,
// leases that ran out KeepDone ago (released ones, those of a gateway that
// died holding them, the scheduler's slot leases) and queue rows finished
// KeepDone ago. Poisoned queue rows stay until an operator removes them
// (kck queue).
//
// Each table is walked along its primary key, SweepBatch rows per
// statement, going on after the last key the previous Sweep of this Store
// reached, at most SweepMaxRows rows of each table per Sweep (so that a
// large table does not starve the others): the tables have no index on
// their expiry, which would cost every refresh its heap-only update (see
// the package doc). Each statement is its own short transaction and deletes
// a row only if it is still dead when locked, so a row written meanwhile
// stays.
//
// Run it from one gateway of the cluster at a time: the gateway's
// scheduler runs it under a slot lease every SweepInterval.
func (s *Store) Sweep(ctx context.Context) (Swept, error) {
	var out Swept
	now := time.Now()
	out.Wrapped = true
	for _, w := range []struct {
		table  string
		key    []string // the primary key's columns: the walk's order
		dead   string   // when a row x is dead, given the cutoff
		cutoff time.Time
		n      *int
	}{
		{"cache_entries", []string{"key"}, "x.expires_at <= %s", now, &out.Entries},
		{"leases", []string{"name"}, "x.expires_at <= %s", now.Add(-s.cfg.KeepDone), &out.Leases},
		{"refresh_queue", []string{"queue", "key"}, "x.done_at <= %s", now.Add(-s.cfg.KeepDone), &out.QueueRows},
	} {
		examined, deleted, done, err := s.walk(ctx, w.table, w.key, w.dead, w.cutoff, s.cfg.SweepMaxRows)
		out.Examined += examined
		*w.n += deleted
		if err != nil {
			return out, err
		}
		out.Wrapped = out.Wrapped && done
	}
	return out, nil
}

// walk deletes table's dead rows among at most budget rows after the
// table's cursor, in primary key order (an index range scan), and moves
// the cursor on: back to the start once it passes the last row, which done
// reports. dead is the condition on a row x, with a %s for the cutoff; it
// is checked on the row as locked, so a row written meanwhile stays.
func (s *Store) walk(ctx context.Context, table string, key []string, dead string, cutoff time.Time, budget int) (examined, deleted int, done bool, err error) {
	t := pgx.Identifier{s.cfg.Schema, table}.Sanitize()
	n := len(key)
	var params, xs, bs, desc []string
	for i, k := range key {
		params = append(params, fmt.Sprintf("$%d", i+1))
		xs, bs, desc = append(xs, "x."+k), append(bs, "b."+k), append(desc, k+" DESC")
	}
	cols := strings.Join(key, ", ")
	stmt := fmt.Sprintf(`WITH b AS (SELECT %[1]s FROM %[2]s WHERE (%[1]s) > (%[3]s) ORDER BY %[1]s LIMIT $%[4]d),
		d AS (DELETE FROM %[2]s x USING b WHERE (%[5]s) = (%[6]s) AND %[7]s RETURNING 1)
		SELECT l.*, (SELECT count(*) FROM b), (SELECT count(*) FROM d) FROM (SELECT %[1]s FROM b ORDER BY %[8]s LIMIT 1) l`,
		cols, t, strings.Join(params, ", "), n+1, strings.Join(xs, ", "), strings.Join(bs, ", "),
		fmt.Sprintf(dead, fmt.Sprintf("$%d", n+2)), strings.Join(desc, ", "))
	after := s.cursor(table, n)
	defer func() { s.setCursor(table, after) }()
	for examined < budget {
		batch := min(s.cfg.SweepBatch, budget-examined)
		last := make([]string, n)
		var seen, gone int
		dest := make([]any, 0, n+2)
		for i := range last {
			dest = append(dest, &last[i])
		}
		args := make([]any, 0, n+2)
		for _, a := range after {
			args = append(args, a)
		}
		s.writes.Add(1)
		err := s.pool.QueryRow(ctx, stmt, append(args, batch, cutoff)...).Scan(append(dest, &seen, &gone)...)
		if errors.Is(err, pgx.ErrNoRows) { // nothing after the cursor
			after = make([]string, n)
			return examined, deleted, true, nil
		}
		if err != nil {
			return examined, deleted, false, fmt.Errorf("postgres sweep %s: %w", table, unavailable(err))
		}
		examined += seen
		deleted += gone
		if seen < batch {
			after = make([]string, n)
			return examined, deleted, true, nil
		}
		after = last
	}
	return examined, deleted, false, nil
}

// cursor is where the next walk of table starts: after these key values
// ("" for each: from the first row, since every key sorts after the empty
// string).
func (s *Store) cursor(table string, n int) []string {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if c, ok := s.sweepAt[table]; ok && len(c) == n {
		return c
	}
	return make([]string, n)
}

func (s *Store) setCursor(table string, after []string) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if s.sweepAt == nil {
		s.sweepAt = map[string][]string{}
	}
	s.sweepAt[table] = after
}
