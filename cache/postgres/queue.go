package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kck-go/kck/queue"
)

// The refresh queue on PostgreSQL (see docs/refresh-queue.md):
//
//	refresh_queue ((queue, key) PRIMARY KEY, version, requests, ..., poisoned, done_at)
//
// A row's columns are a queue.Item's; version is a random 63-bit number
// written with every change. Every change reads the row, applies the queue
// package's rule to it (Config.Merge, Expire, Claim, Done, Release) and
// writes the outcome with a statement conditioned on the version read, in
// two round trips (the read, the write): a change that lost a race to
// another writer is decided again on the row as it now is. Several keys go
// in one statement (jsonb_to_recordset), so EnqueueMany of 500 keys is two
// round trips too.
//
// A row that leaves the queue (Done, Remove) is marked finished (done_at)
// rather than deleted, and the key's next request writes over it: a key
// refreshed again and again through the queue updates one row in place
// (heap-only updates) instead of inserting and deleting one each time,
// which left a dead row and its index entries for vacuum per refresh. The
// sweep deletes rows finished KeepDone ago. Readers skip finished rows.
//
// Claims are river's: the claim statement locks the rows it takes with
// FOR UPDATE SKIP LOCKED, in Select's order, up to the batch, so that
// concurrent claimers never wait for one another and never take the same
// row (a row another claim has just taken is locked, or no longer at the
// version read). Which rows to try is queue.Select over every claimable row,
// read first: Select's rules need the whole queue's request counts.

// DefaultQueue is the name of the queue (*Store).Queue opens.
const DefaultQueue = "default"

// maxRaces bounds how many times one change is decided again after losing
// a race to another writer of the row, and how many claim rounds in a row
// may lose every row they tried. Each lost race is another writer's
// success, so reaching it takes sustained contention on one row.
const maxRaces = 8

// writeChunk is the most rows one write statement carries.
const writeChunk = 500

// Queue is the PostgreSQL queue.Store: one queue, named, in the store's
// schema, shared by every gateway that opens the same name. It is safe for
// concurrent use and usable until the Store is closed. Times (claims,
// leases, backoff) come from Config.Clock, never the database's clock.
type Queue struct {
	s    *Store
	name string
	cfg  queue.Config
	sql  queueStatements
}

var _ queue.Store = (*Queue)(nil)

// Queue returns the refresh queue named DefaultQueue. The table comes from
// Migrate (`kck migrate`).
func (s *Store) Queue(cfg queue.Config) (*Queue, error) {
	return s.QueueNamed(DefaultQueue, cfg)
}

// QueueNamed returns the refresh queue called name. Queues of different
// names share the table and nothing else (the name leads the primary key).
func (s *Store) QueueNamed(name string, cfg queue.Config) (*Queue, error) {
	if name == "" {
		return nil, errors.New("postgres queue: empty queue name")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Queue{s: s, name: name, cfg: cfg, sql: newQueueStatements(s.cfg.Schema)}, nil
}

type queueStatements struct {
	load, loadMany, claimable, all, finish, update, insert, write, claim string
}

// itemCols are the columns of a queue.Item and whether the row is
// finished, in scanItem's order.
const itemCols = `key, version, requests, first_requested, last_requested, worker, claimed_at, lease_until,
	claimed_requests, first_since_claim, attempts, unavailable, not_before, poisoned, last_error, done_at IS NOT NULL, trace`

// rowType is jsonb_to_recordset's record of a written row (see row).
const rowType = `(ord int, key text, prev bigint, claim boolean, version bigint, requests bigint,
	first_requested timestamptz, last_requested timestamptz, worker text, claimed_at timestamptz,
	lease_until timestamptz, claimed_requests bigint, first_since_claim timestamptz, attempts int,
	unavailable int, not_before timestamptz, poisoned boolean, last_error text, trace text)`

const setCols = `done_at = NULL, version = u.version, requests = u.requests, first_requested = u.first_requested,
	last_requested = u.last_requested, worker = u.worker, claimed_at = u.claimed_at, lease_until = u.lease_until,
	claimed_requests = u.claimed_requests, first_since_claim = u.first_since_claim, attempts = u.attempts,
	unavailable = u.unavailable, not_before = u.not_before, poisoned = u.poisoned, last_error = u.last_error, trace = u.trace`

func newQueueStatements(schema string) queueStatements {
	t := pgx.Identifier{schema, "refresh_queue"}.Sanitize()
	return queueStatements{
		load:     `SELECT ` + itemCols + ` FROM ` + t + ` WHERE queue = $1 AND key = $2`,
		loadMany: `SELECT ` + itemCols + ` FROM ` + t + ` WHERE queue = $1 AND key = ANY($2)`,
		// What a claim at $2 may take or must expire: not poisoned, and
		// either unclaimed and past its backoff, or claimed by a lease
		// that ran out. The rules are applied again in Go on what this
		// returns; the filter only spares reading the rest.
		claimable: `SELECT ` + itemCols + ` FROM ` + t + ` WHERE queue = $1 AND done_at IS NULL AND NOT poisoned
			AND (worker = '' AND (not_before IS NULL OR not_before <= $2) OR worker <> '' AND lease_until <= $2)`,
		all: `SELECT ` + itemCols + ` FROM ` + t + ` WHERE queue = $1 AND done_at IS NULL ORDER BY key`,
		// A row leaves the queue by being marked finished (a new version,
		// so that no claim of it is current); the sweep deletes it later.
		finish: `UPDATE ` + t + ` SET done_at = now(), version = $4, worker = ''
			WHERE queue = $1 AND key = $2 AND version = $3 AND done_at IS NULL`,
		// One row, changed if still at the version read ($18; a finished
		// row is queued again), or new.
		update: `UPDATE ` + t + ` SET (version, requests, first_requested, last_requested, worker, claimed_at, lease_until,
				claimed_requests, first_since_claim, attempts, unavailable, not_before, poisoned, last_error, trace, done_at)
				= ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL)
			WHERE queue = $1 AND key = $2 AND version = $18`,
		insert: `INSERT INTO ` + t + ` (queue, key, version, requests, first_requested, last_requested, worker, claimed_at,
				lease_until, claimed_requests, first_since_claim, attempts, unavailable, not_before, poisoned, last_error, trace)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT (queue, key) DO NOTHING`,
		// Rows changed (prev: the version read, of a queued row or a
		// finished one) or new (prev 0); $3 lists
		// their keys, so that the rows are found through the primary key
		// whatever the planner guesses of the JSON. Rows to change are
		// locked in key order, so that two writers of the same keys never
		// deadlock; a row whose version moved is left out, and so is a new
		// row another writer inserted first. It returns the keys written.
		write: `WITH u AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS u` + rowType + `),
			l AS (SELECT q.key FROM ` + t + ` q JOIN u ON q.key = u.key
				WHERE q.queue = $1 AND q.key = ANY($3) AND u.prev <> 0 AND q.version = u.prev ORDER BY q.key FOR UPDATE OF q),
			upd AS (UPDATE ` + t + ` q SET ` + setCols + ` FROM l JOIN u ON u.key = l.key
				WHERE q.queue = $1 AND q.key = ANY($3) AND q.key = l.key RETURNING q.key),
			ins AS (INSERT INTO ` + t + ` (queue, key, version, requests, first_requested, last_requested, worker, claimed_at,
					lease_until, claimed_requests, first_since_claim, attempts, unavailable, not_before, poisoned, last_error, trace)
				SELECT $1, key, version, requests, first_requested, last_requested, worker, claimed_at,
					lease_until, claimed_requests, first_since_claim, attempts, unavailable, not_before, poisoned, last_error, trace
				FROM u WHERE prev = 0 ORDER BY key
				ON CONFLICT (queue, key) DO NOTHING RETURNING key)
			SELECT key FROM upd UNION ALL SELECT key FROM ins`,
		// A claim: the rows to claim (claim true), in Select's order (ord),
		// at most $4 of them, and the rows whose lease ran out as Expire
		// left them (claim false); $3 lists their keys. Rows locked by
		// another claim, or changed since they were read, are skipped, never
		// waited for. It returns the keys written and whether each was
		// claimed.
		claim: `WITH u AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS u` + rowType + `),
			c AS (SELECT q.key FROM ` + t + ` q JOIN u ON q.key = u.key
				WHERE q.queue = $1 AND q.key = ANY($3) AND u.claim AND q.version = u.prev
				ORDER BY u.ord LIMIT $4 FOR UPDATE OF q SKIP LOCKED),
			x AS (SELECT q.key FROM ` + t + ` q JOIN u ON q.key = u.key
				WHERE q.queue = $1 AND q.key = ANY($3) AND NOT u.claim AND q.version = u.prev FOR UPDATE OF q SKIP LOCKED),
			w AS (SELECT key FROM c UNION ALL SELECT key FROM x)
			UPDATE ` + t + ` q SET ` + setCols + ` FROM w JOIN u ON u.key = w.key
			WHERE q.queue = $1 AND q.key = ANY($3) AND q.key = w.key RETURNING q.key, u.claim`,
	}
}

// row is one row to write, as jsonb_to_recordset reads it (rowType).
type row struct {
	Ord             int        `json:"ord"`
	Key             string     `json:"key"`
	Prev            int64      `json:"prev"`
	Claim           bool       `json:"claim"`
	Version         int64      `json:"version"`
	Requests        int64      `json:"requests"`
	FirstRequested  time.Time  `json:"first_requested"`
	LastRequested   time.Time  `json:"last_requested"`
	Worker          string     `json:"worker"`
	ClaimedAt       *time.Time `json:"claimed_at"`
	LeaseUntil      *time.Time `json:"lease_until"`
	ClaimedRequests int64      `json:"claimed_requests"`
	FirstSinceClaim *time.Time `json:"first_since_claim"`
	Attempts        int        `json:"attempts"`
	Unavailable     int        `json:"unavailable"`
	NotBefore       *time.Time `json:"not_before"`
	Poisoned        bool       `json:"poisoned"`
	LastError       string     `json:"last_error"`
	Trace           string     `json:"trace"`
}

// change is a row's new state: it was read at version prev (0: there was
// no row).
type change struct {
	prev uint64
	it   *queue.Item
}

// toRow gives it a new version and makes it a row. Its times are cut to
// the microsecond first, as the database keeps them, so that the item a
// caller gets back is the row as stored.
func toRow(c change, ord int, claim bool) row {
	it := c.it
	it.Version = newVersion(c.prev)
	for _, t := range []*time.Time{&it.FirstRequested, &it.LastRequested, &it.ClaimedAt, &it.LeaseUntil, &it.FirstSinceClaim, &it.NotBefore} {
		*t = t.Truncate(time.Microsecond)
	}
	return row{
		Ord: ord, Key: it.Key, Prev: int64(c.prev), Claim: claim, Version: int64(it.Version),
		Requests: it.Requests, FirstRequested: it.FirstRequested, LastRequested: it.LastRequested,
		Worker: it.Worker, ClaimedAt: optTime(it.ClaimedAt), LeaseUntil: optTime(it.LeaseUntil),
		ClaimedRequests: it.ClaimedRequests, FirstSinceClaim: optTime(it.FirstSinceClaim),
		Attempts: it.Attempts, Unavailable: it.Unavailable, NotBefore: optTime(it.NotBefore),
		Poisoned: it.Poisoned, LastError: it.LastError, Trace: it.Trace,
	}
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// stored is a row as read: the item, and whether it is finished (its
// refresh done, kept for reuse until the sweep deletes it; not queued).
type stored struct {
	queue.Item
	finished bool
}

// scanItem reads a row in itemCols' order.
func scanItem(r pgx.Row) (stored, error) {
	var (
		it                                           stored
		version                                      int64
		first, last, claimed, lease, since, notBefor pgtype.Timestamptz
	)
	err := r.Scan(&it.Key, &version, &it.Requests, &first, &last, &it.Worker, &claimed, &lease,
		&it.ClaimedRequests, &since, &it.Attempts, &it.Unavailable, &notBefor, &it.Poisoned, &it.LastError, &it.finished, &it.Trace)
	if err != nil {
		return stored{}, err
	}
	it.Version = uint64(version)
	it.FirstRequested, it.LastRequested, it.ClaimedAt = fromTS(first), fromTS(last), fromTS(claimed)
	it.LeaseUntil, it.FirstSinceClaim, it.NotBefore = fromTS(lease), fromTS(since), fromTS(notBefor)
	return it, nil
}

func (q *Queue) query(ctx context.Context, stmt string, args ...any) ([]stored, error) {
	q.s.reads.Add(1)
	rows, err := q.s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) { return scanItem(r) })
	return items, unavailable(err)
}

// Enqueue merges a request for key at time at (Config.Merge).
func (q *Queue) Enqueue(ctx context.Context, key string, at time.Time) error {
	return q.EnqueueMany(ctx, []string{key}, at)
}

// EnqueueMany merges a request at time at for each key (a key given twice
// counts twice), up to writeChunk keys per read and per write. On an error
// some keys may be queued; queueing them again only counts one more
// request.
func (q *Queue) EnqueueMany(ctx context.Context, keys []string, at time.Time) error {
	trace := queue.TraceOf(ctx)
	if slices.Contains(keys, "") {
		return errors.New("postgres queue: empty key")
	}
	count := map[string]int{}
	var distinct []string
	for _, k := range keys {
		if count[k] == 0 {
			distinct = append(distinct, k)
		}
		count[k]++
	}
	if len(distinct) == 1 {
		k := distinct[0]
		return q.update(ctx, "enqueue", k, func(it *queue.Item, _ bool) (action, error) {
			for range count[k] {
				q.cfg.Merge(it, k, at, trace)
			}
			return put, nil
		})
	}
	for chunk := range slices.Chunk(distinct, writeChunk) {
		err := q.changeMany(ctx, "enqueue", chunk, func(it *queue.Item, key string) bool {
			for range count[key] {
				q.cfg.Merge(it, key, at, trace)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// changeMany reads keys' rows, lets apply change each (a zero Item for a
// key with no row; false leaves the row as it is) and writes them in one
// statement. Rows another writer changed first are read and decided again.
func (q *Queue) changeMany(ctx context.Context, op string, keys []string, apply func(it *queue.Item, key string) bool) error {
	for race := 0; len(keys) > 0; race++ {
		found, err := q.query(ctx, q.sql.loadMany, q.name, keys)
		if err != nil {
			return fmt.Errorf("postgres queue %s: %w", op, err)
		}
		byKey := make(map[string]stored, len(found))
		for _, it := range found {
			byKey[it.Key] = it
		}
		var rows []row
		for _, k := range keys {
			st := byKey[k]
			// A finished row is written over as a new one (Merge of a zero
			// item), at the version read.
			it, prev := st.Item, st.Version
			if st.finished {
				it = queue.Item{}
			}
			if !apply(&it, k) {
				continue
			}
			rows = append(rows, toRow(change{prev: prev, it: &it}, len(rows), false))
		}
		written, err := q.write(ctx, rows)
		if err != nil {
			return fmt.Errorf("postgres queue %s: %w", op, err)
		}
		var lost []string
		for _, r := range rows {
			if !written[r.Key] {
				lost = append(lost, r.Key)
			}
		}
		keys = lost
		if len(keys) == 0 {
			return nil
		}
		if race == maxRaces {
			return fmt.Errorf("postgres queue %s %q: the row changed under %d attempts in a row", op, keys[0], race+1)
		}
		if err := pause(ctx, race); err != nil {
			return fmt.Errorf("postgres queue %s: %w", op, err)
		}
	}
	return nil
}

// write runs the write statement and returns the keys it wrote. A
// deadlock (which the key order makes rare) writes nothing: the caller
// decides again.
func (q *Queue) write(ctx context.Context, rows []row) (map[string]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	q.s.lwts.Add(1)
	res, err := q.s.pool.Query(ctx, q.sql.write, q.name, raw, rowKeys(rows))
	if err != nil {
		return nil, unavailable(err)
	}
	keys, err := pgx.CollectRows(res, pgx.RowTo[string])
	if deadlock(err) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	written := make(map[string]bool, len(keys))
	for _, k := range keys {
		written[k] = true
	}
	return written, nil
}

func rowKeys(rows []row) []string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
	}
	return keys
}

func deadlock(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "40P01"
}

// Claim takes up to batch rows for worker, chosen by queue.Select among the
// claimable ones, and leases them for leaseTTL. It reads the rows a claim
// may take or must expire, applies Config.Expire and Config.Claim, and
// writes them in one statement that locks the rows it takes with FOR UPDATE
// SKIP LOCKED, in Select's order: rows another claimer holds or has just
// changed are skipped, so two claims never return the same row and a
// contended claim may return fewer rows than it could.
//
// Concurrent claims read the same rows and choose the same first ones, so
// each offers the statement the rows the next few claims would take
// (nextClaims) and takes the first batch it can lock. When it lost every
// row it tried, it reads again after a random pause and offers more (an
// empty claim tells the worker that the queue is drained).
func (q *Queue) Claim(ctx context.Context, worker string, batch int, leaseTTL time.Duration) ([]queue.Item, error) {
	if worker == "" || batch <= 0 || leaseTTL <= 0 {
		return nil, errors.New("postgres queue: claim needs a worker name, a positive batch and a positive lease")
	}
	for round := 0; ; round++ {
		out, lost, err := q.claimRound(ctx, worker, batch, 2<<min(round, 5), leaseTTL)
		switch {
		case err != nil:
			return nil, fmt.Errorf("postgres queue claim: %w", err)
		case len(out) > 0:
			return out, nil
		case !lost:
			return nil, nil
		case round == maxRaces:
			return nil, fmt.Errorf("postgres queue claim: other workers took every row tried, %d rounds in a row", round+1)
		}
		if err := pause(ctx, round); err != nil {
			return nil, fmt.Errorf("postgres queue claim: %w", err)
		}
	}
}

// claimRound is one read of the queue and the claim statement it leads to:
// it offers the rows the next claims claims of batch rows would take. It
// returns the rows taken, in Select's order, and whether rows were offered
// and none taken.
func (q *Queue) claimRound(ctx context.Context, worker string, batch, claims int, leaseTTL time.Duration) (out []queue.Item, lost bool, err error) {
	now := q.cfg.Clock.Now()
	read, err := q.query(ctx, q.sql.claimable, q.name, now)
	if err != nil {
		return nil, false, err
	}
	// A row whose lease ran out counts a failed attempt (Expire); it is
	// claimed again at once when it may be, else (poisoned) written back.
	prev := make(map[string]uint64, len(read))
	expired := map[string]bool{}
	var claimable, poisoned []queue.Item
	for _, st := range read {
		it := st.Item
		prev[it.Key] = it.Version
		exp := q.cfg.Expire(&it, now)
		switch {
		case q.cfg.Claimable(&it, now):
			claimable = append(claimable, it)
			expired[it.Key] = exp
		case exp:
			poisoned = append(poisoned, it)
		}
	}
	chosen := nextClaims(slices.Clone(claimable), batch, claims)
	var rows []row
	offered := make(map[string]bool, len(chosen))
	for i := range chosen {
		it := &chosen[i]
		q.cfg.Claim(it, worker, now, leaseTTL)
		rows = append(rows, toRow(change{prev: prev[it.Key], it: it}, len(rows), true))
		offered[it.Key] = true
	}
	for _, it := range claimable {
		if expired[it.Key] && !offered[it.Key] {
			rows = append(rows, toRow(change{prev: prev[it.Key], it: &it}, len(rows), false))
		}
	}
	for _, it := range poisoned {
		rows = append(rows, toRow(change{prev: prev[it.Key], it: &it}, len(rows), false))
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return nil, false, err
	}
	q.s.lwts.Add(1)
	res, err := q.s.pool.Query(ctx, q.sql.claim, q.name, raw, rowKeys(rows), batch)
	if err != nil {
		return nil, false, unavailable(err)
	}
	taken := map[string]bool{}
	var (
		key   string
		claim bool
	)
	_, err = pgx.ForEachRow(res, []any{&key, &claim}, func() error {
		if claim {
			taken[key] = true
		}
		return nil
	})
	if err != nil {
		return nil, false, unavailable(err)
	}
	for _, it := range chosen {
		if taken[it.Key] {
			out = append(out, it)
		}
	}
	return out, len(chosen) > 0 && len(out) == 0, nil
}

// nextClaims returns the rows that the next claims claims of batch rows
// would take from cands, in order: Select's batch, then Select's batch
// among the rest, and so on. It may reorder cands.
func nextClaims(cands []queue.Item, batch, claims int) []queue.Item {
	var out []queue.Item
	for range claims {
		next := queue.Select(cands, batch)
		if len(next) == 0 {
			break
		}
		out = append(out, next...)
		taken := make(map[string]bool, len(next))
		for _, it := range next {
			taken[it.Key] = true
		}
		cands = slices.DeleteFunc(cands, func(it queue.Item) bool { return taken[it.Key] })
	}
	return out
}

// Done ends worker's successful refresh of key, claimed at version: the row
// leaves the queue (it is kept finished, for the key's next request to
// reuse, until the sweep deletes it), or stays for the requests merged
// since the claim (Config.Done). A row gone, or held by another worker, is
// ErrNotClaimed.
func (q *Queue) Done(ctx context.Context, worker, key string, version uint64) error {
	// It reads the row first: a delete conditioned on the version alone
	// would let a worker that names another's claim version end that claim.
	return q.update(ctx, "done", key, func(it *queue.Item, found bool) (action, error) {
		if !found {
			return keep, fmt.Errorf("%w: %s is not queued", queue.ErrNotClaimed, key)
		}
		remove, err := q.cfg.Done(it, worker, version)
		if err != nil {
			return keep, err
		}
		if remove {
			return del, nil
		}
		return put, nil
	})
}

// Release ends worker's failed refresh of key: backoff, or poison
// (Config.Release). A row gone, or held by another worker, is
// ErrNotClaimed.
func (q *Queue) Release(ctx context.Context, worker, key string, version uint64, cause error) error {
	return q.update(ctx, "release", key, func(it *queue.Item, found bool) (action, error) {
		if !found {
			return keep, fmt.Errorf("%w: %s is not queued", queue.ErrNotClaimed, key)
		}
		if err := q.cfg.Release(it, worker, cause, q.cfg.Clock.Now()); err != nil {
			return keep, err
		}
		return put, nil
	})
}

// Get returns key's row, or an error wrapping queue.ErrNotFound.
func (q *Queue) Get(ctx context.Context, key string) (queue.Item, error) {
	st, found, err := q.load(ctx, key)
	if err != nil {
		return queue.Item{}, fmt.Errorf("postgres queue get %q: %w", key, err)
	}
	if !found || st.finished {
		return queue.Item{}, fmt.Errorf("postgres queue get %q: %w", key, queue.ErrNotFound)
	}
	return st.Item, nil
}

// Remove takes key's row out of the queue whatever its state (it is kept
// finished until the sweep deletes it); a missing row is fine.
func (q *Queue) Remove(ctx context.Context, key string) error {
	return q.update(ctx, "remove", key, func(_ *queue.Item, found bool) (action, error) {
		if !found {
			return keep, nil
		}
		return del, nil
	})
}

// Stats describes the queue at Config.Clock's now.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	rows, err := q.query(ctx, q.sql.all, q.name)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("postgres queue stats: %w", err)
	}
	var s queue.Stats
	now := q.cfg.Clock.Now()
	for i := range rows {
		queue.AddToStats(&s, &rows[i].Item, now)
	}
	return s, nil
}

// action is what a rule decided for a row.
type action int

const (
	keep action = iota // leave the row as it is
	put                // write the changed row
	del                // delete the row
)

// update reads key's row, lets decide apply a rule to it (a zero Item when
// found is false) and writes the outcome conditioned on the version read.
// When another writer changed the row first, it decides again on the row
// as it now is, after a random pause. The rule's errors (ErrNotClaimed) are
// returned wrapped.
func (q *Queue) update(ctx context.Context, op, key string, decide func(it *queue.Item, found bool) (action, error)) error {
	for race := 0; ; race++ {
		st, exists, err := q.load(ctx, key)
		if err != nil {
			return fmt.Errorf("postgres queue %s %q: %w", op, key, err)
		}
		// A finished row is no row to the rules, but it is the row the
		// write replaces, at its version.
		it, prev, found := st.Item, st.Version, exists && !st.finished
		if !found {
			it = queue.Item{}
		}
		act, err := decide(&it, found)
		if err != nil {
			return fmt.Errorf("postgres queue %s %q: %w", op, key, err)
		}
		if act == keep || act == del && !found {
			return nil
		}
		var ok bool
		if act == del {
			q.s.lwts.Add(1)
			var tag pgconn.CommandTag
			tag, err = q.s.pool.Exec(ctx, q.sql.finish, q.name, key, int64(prev), int64(newVersion(prev)))
			ok = err == nil && tag.RowsAffected() == 1
			err = unavailable(err)
		} else {
			ok, err = q.writeOne(ctx, prev, exists, &it)
		}
		if err != nil {
			return fmt.Errorf("postgres queue %s %q: %w", op, key, err)
		}
		if ok {
			return nil
		}
		if race == maxRaces {
			return fmt.Errorf("postgres queue %s %q: the row changed under %d attempts in a row", op, key, race+1)
		}
		if err := pause(ctx, race); err != nil {
			return fmt.Errorf("postgres queue %s %q: %w", op, key, err)
		}
	}
}

// writeOne writes it in place of its row as read (exists, at version
// prev, queued or finished), or as a new row, and reports whether it was
// written: false when another writer changed the row, or inserted it,
// first.
func (q *Queue) writeOne(ctx context.Context, prev uint64, exists bool, it *queue.Item) (bool, error) {
	found := exists
	if !found {
		prev = 0
	}
	r := toRow(change{prev: prev, it: it}, 0, false)
	args := []any{q.name, r.Key, r.Version, r.Requests, r.FirstRequested, r.LastRequested, r.Worker, r.ClaimedAt, r.LeaseUntil,
		r.ClaimedRequests, r.FirstSinceClaim, r.Attempts, r.Unavailable, r.NotBefore, r.Poisoned, r.LastError, r.Trace}
	stmt := q.sql.insert
	if found {
		stmt, args = q.sql.update, append(args, int64(prev))
	}
	q.s.lwts.Add(1)
	tag, err := q.s.pool.Exec(ctx, stmt, args...)
	if err != nil {
		return false, unavailable(err)
	}
	return tag.RowsAffected() == 1, nil
}

// load reads key's row, queued or finished; false when there is none.
func (q *Queue) load(ctx context.Context, key string) (stored, bool, error) {
	q.s.reads.Add(1)
	it, err := scanItem(q.s.pool.QueryRow(ctx, q.sql.load, q.name, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, unavailable(err)
	}
	return it, true, nil
}

// newVersion returns a random positive 63-bit version (a bigint) other than
// prev. Random versions need no coordination between gateways, and a row
// removed and queued again never repeats a version a worker may still hold.
func newVersion(prev uint64) uint64 {
	for {
		if v := uint64(rand.Int64N(math.MaxInt64)) + 1; v != prev {
			return v
		}
	}
}

// pause waits a random time before a retry after a lost race, up to 2 ms
// doubled per race (at most 128 ms), so that contenders spread out.
func pause(ctx context.Context, race int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(2*time.Millisecond) << min(race, 6))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
