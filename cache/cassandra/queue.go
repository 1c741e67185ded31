package cassandra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kck-go/kck/queue"
)

// The refresh queue on Cassandra (see docs/refresh-queue.md):
//
//	refresh_queue ((queue, shard), key; version, item)   lightweight transactions only
//
// item is the JSON of a queue.Item; version is the row's Version, a random
// 63-bit number written with every change. Every write is a lightweight
// transaction conditioned on the version read (INSERT ... IF NOT EXISTS,
// UPDATE or DELETE ... IF version = ?), which makes each change of a row
// atomic and claims exclusive; plain writes are never mixed in (see the
// package doc). The rules applied between the read and the write are the
// queue package's.

// queueShards is the number of partitions of one queue. A claim reads the
// whole queue (Select needs every row's request count), one query per
// shard; spreading the rows keeps partitions small and spreads Paxos
// contention, which is per partition. Rows are found by hash of their key,
// so the number must never change once a queue holds rows.
const queueShards = 16

// DefaultQueue is the name of the queue (*Store).Queue opens.
const DefaultQueue = "default"

// maxRaces bounds how many times one change is decided again after losing
// a race to another writer of the row, and how many claim rounds in a row
// may lose every row they tried. Each lost race is another writer's
// success, so reaching it takes sustained contention on one row.
const maxRaces = 8

// Queue is the Cassandra queue.Store: one queue, named, in the store's
// keyspace, shared by every gateway that opens the same name. It is safe
// for concurrent use; it uses the Store's session and is usable until the
// Store is closed. Times (claims, leases, backoff) come from Config.Clock
// and are compared in Go, never with Cassandra's clock.
type Queue struct {
	s    *Store
	name string
	cfg  queue.Config
}

var _ queue.Store = (*Queue)(nil)

// Queue returns the refresh queue named DefaultQueue. The table comes
// from Migrate (`kck migrate`).
func (s *Store) Queue(cfg queue.Config) (*Queue, error) {
	return s.QueueNamed(DefaultQueue, cfg)
}

// QueueNamed returns the refresh queue called name. Queues of different
// names share the table and nothing else (the name is part of the
// partition key), which keeps tests, or separate deployments in one
// keyspace, apart.
func (s *Store) QueueNamed(name string, cfg queue.Config) (*Queue, error) {
	if name == "" {
		return nil, errors.New("cassandra queue: empty queue name")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Queue{s: s, name: name, cfg: cfg}, nil
}

// Enqueue merges a request for key at time at (Config.Merge).
func (q *Queue) Enqueue(ctx context.Context, key string, at time.Time) error {
	return q.EnqueueMany(ctx, []string{key}, at)
}

// EnqueueMany merges a request at time at for each key. Each key is its
// own transaction, so on an error some keys may be queued; queueing them
// again only counts one more request. The shards are written in parallel,
// each shard's keys one after the other: Paxos contention is per
// partition, so a batch never contends with itself.
func (q *Queue) EnqueueMany(ctx context.Context, keys []string, at time.Time) error {
	trace := queue.TraceOf(ctx)
	if slices.Contains(keys, "") {
		return errors.New("cassandra queue: empty key")
	}
	var byShard [queueShards][]string
	for _, k := range keys {
		byShard[shardOf(k)] = append(byShard[shardOf(k)], k)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, ks := range byShard {
		if len(ks) == 0 {
			continue
		}
		g.Go(func() error {
			for _, k := range ks {
				err := q.update(ctx, "enqueue", k, func(it *queue.Item, _ bool) (action, error) {
					q.cfg.Merge(it, k, at, trace)
					return put, nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// Claim takes up to batch rows for worker, chosen by queue.Select among
// the claimable ones, and leases them for leaseTTL. It reads the whole
// queue, writes back the rows whose lease ran out (Config.Expire), then
// takes each chosen row with its own transaction: a row another worker
// took first is left out, so two claims never return the same row and a
// contended claim may return fewer rows than it could.
//
// Concurrent claims all choose the same rows, so Claim tries them in a
// random order, which spreads the claimers over the batch. When it lost
// every row it tried, it reads again after a random pause (an empty claim
// tells the worker that the queue is drained) and tries among more rows:
// the rows the next 2, 4, 8... claims would take by Select, as that many
// claimers seem to be at work. When Cassandra fails after some rows were
// taken, Claim returns those rows, so that the worker refreshes them
// instead of leaving them to their leases.
func (q *Queue) Claim(ctx context.Context, worker string, batch int, leaseTTL time.Duration) ([]queue.Item, error) {
	if worker == "" || batch <= 0 || leaseTTL <= 0 {
		return nil, errors.New("cassandra queue: claim needs a worker name, a positive batch and a positive lease")
	}
	for round := 0; ; round++ {
		out, lost, err := q.claimRound(ctx, worker, batch, 1<<min(round, 5), leaseTTL)
		switch {
		case len(out) > 0:
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("cassandra queue claim: %w", err)
		case lost == 0:
			return nil, nil
		case round == maxRaces:
			return nil, fmt.Errorf("cassandra queue claim: other workers took every row tried, %d rounds in a row", round+1)
		}
		if err := pause(ctx, round); err != nil {
			return nil, fmt.Errorf("cassandra queue claim: %w", err)
		}
	}
}

// claimRound is one read of the queue and the transactions it leads to: it
// tries the rows the next claims claims of batch rows would take, in a
// random order, until it has batch of them. It returns the rows taken, in
// Select's order, and how many rows went to other writers first.
func (q *Queue) claimRound(ctx context.Context, worker string, batch, claims int, leaseTTL time.Duration) (out []queue.Item, lost int, err error) {
	now := q.cfg.Clock.Now()
	rows, err := q.rows(ctx)
	if err != nil {
		return nil, 0, err
	}
	var cands []queue.Item
	for _, it := range rows {
		if q.cfg.Expire(&it, now) {
			ok, err := q.commit(ctx, it.Key, it.Version, true, &it)
			if err != nil {
				return nil, lost, err
			}
			if !ok {
				lost++
				continue
			}
		}
		if q.cfg.Claimable(&it, now) {
			cands = append(cands, it)
		}
	}
	chosen := nextClaims(cands, batch, claims)
	won, taken := make([]bool, len(chosen)), 0
	for _, i := range rand.Perm(len(chosen)) {
		if taken == batch {
			break
		}
		it := &chosen[i]
		prev := it.Version
		q.cfg.Claim(it, worker, now, leaseTTL)
		ok, cerr := q.commit(ctx, it.Key, prev, true, it)
		if cerr != nil {
			err = cerr
			break
		}
		if won[i] = ok; ok {
			taken++
		} else {
			lost++
		}
	}
	for i, it := range chosen {
		if won[i] {
			out = append(out, it)
		}
	}
	return out, lost, err
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
// is removed, or kept for the requests merged since the claim
// (Config.Done). A row gone, or held by another worker, is ErrNotClaimed.
func (q *Queue) Done(ctx context.Context, worker, key string, version uint64) error {
	// It reads the row first: a delete conditioned on the version alone
	// would let a worker that names another's claim version end that claim
	// (the worker lives in the item, not in a column a condition can test).
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
	it, found, err := q.load(ctx, key, false)
	if err != nil {
		return queue.Item{}, fmt.Errorf("cassandra queue get %q: %w", key, err)
	}
	if !found {
		return queue.Item{}, fmt.Errorf("cassandra queue get %q: %w", key, queue.ErrNotFound)
	}
	return it, nil
}

// Remove deletes key's row whatever its state; a missing row is fine.
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
	rows, err := q.rows(ctx)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("cassandra queue stats: %w", err)
	}
	var s queue.Stats
	now := q.cfg.Clock.Now()
	for i := range rows {
		queue.AddToStats(&s, &rows[i], now)
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
// found is false) and writes the outcome with a transaction conditioned on
// the version read. When another writer changed the row first, it reads
// the row again at serial consistency (which finishes any transaction in
// flight, so the read is current) and decides again, after a random pause
// that keeps contenders from colliding in step. The rule's errors
// (ErrNotClaimed) are returned wrapped.
func (q *Queue) update(ctx context.Context, op, key string, decide func(it *queue.Item, found bool) (action, error)) error {
	serial := false
	for race := 0; ; race++ {
		it, found, err := q.load(ctx, key, serial)
		if err != nil {
			return fmt.Errorf("cassandra queue %s %q: %w", op, key, err)
		}
		prev := it.Version
		act, err := decide(&it, found)
		if err != nil {
			return fmt.Errorf("cassandra queue %s %q: %w", op, key, err)
		}
		if act == keep || act == del && !found {
			return nil
		}
		next := &it
		if act == del {
			next = nil
		}
		ok, err := q.commit(ctx, key, prev, found, next)
		if err != nil {
			return fmt.Errorf("cassandra queue %s %q: %w", op, key, err)
		}
		if ok {
			return nil
		}
		if race == maxRaces {
			return fmt.Errorf("cassandra queue %s %q: the row changed under %d attempts in a row", op, key, race+1)
		}
		if err := pause(ctx, race); err != nil {
			return fmt.Errorf("cassandra queue %s %q: %w", op, key, err)
		}
		serial = true
	}
}

// commit writes next in place of key's row as read (exists, at version
// prev), or deletes the row when next is nil, with a lightweight
// transaction. It gives next a new version and reports whether the write
// applied; false means another writer changed the row since it was read.
func (q *Queue) commit(ctx context.Context, key string, prev uint64, exists bool, next *queue.Item) (bool, error) {
	sh := shardOf(key)
	var stmt string
	var args []any
	switch {
	case next == nil:
		stmt = `DELETE FROM refresh_queue WHERE queue = ? AND shard = ? AND key = ? IF version = ?`
		args = []any{q.name, sh, key, int64(prev)}
	default:
		next.Version = newVersion(prev)
		raw, err := json.Marshal(next)
		if err != nil {
			return false, err
		}
		if exists {
			stmt = `UPDATE refresh_queue SET version = ?, item = ? WHERE queue = ? AND shard = ? AND key = ? IF version = ?`
			args = []any{int64(next.Version), raw, q.name, sh, key, int64(prev)}
		} else {
			stmt = `INSERT INTO refresh_queue (queue, shard, key, version, item) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`
			args = []any{q.name, sh, key, int64(next.Version), raw}
		}
	}
	// When the condition fails the map receives the row as it stood; it is
	// left unused (an UPDATE returns only the version): update reads the row
	// again at serial consistency.
	applied, err := q.s.lwt(stmt, args...).MapScanCASContext(ctx, map[string]any{})
	if casUnknown(err) {
		// Under contention Paxos may time out with the outcome unknown: a
		// serial read finishes any round in flight and shows whether this
		// write is the row's state. The version is random, so no other
		// writer wrote the same one.
		cur, found, rerr := q.load(ctx, key, true)
		if rerr != nil {
			return false, fmt.Errorf("%w (then: %v)", err, rerr)
		}
		if next == nil {
			// Gone is what a delete wanted, whoever deleted it.
			return !found, nil
		}
		return found && cur.Version == next.Version, nil
	}
	if err != nil {
		return false, err
	}
	return applied, nil
}

// load reads key's row. Serial reads (after a lost race or an unknown
// outcome) take part in Paxos, so they see every transaction decided
// before them; plain reads see every transaction that returned.
func (q *Queue) load(ctx context.Context, key string, serial bool) (queue.Item, bool, error) {
	const stmt = `SELECT version, item FROM refresh_queue WHERE queue = ? AND shard = ? AND key = ?`
	var qry *gocql.Query
	if serial {
		c, _ := parseConsistency(q.s.cfg.SerialConsistency)
		// Not speculated: a second serial read would only add contention.
		qry = q.s.s.Query(stmt, q.name, shardOf(key), key).Idempotent(true).Consistency(c)
	} else {
		qry = q.s.read(stmt, q.name, shardOf(key), key)
	}
	var (
		version int64
		raw     []byte
	)
	err := qry.ScanContext(ctx, &version, &raw)
	if errors.Is(err, gocql.ErrNotFound) {
		return queue.Item{}, false, nil
	}
	if err != nil {
		return queue.Item{}, false, err
	}
	it, err := decodeItem(key, version, raw)
	return it, err == nil, err
}

// rows reads every row of the queue, one query per shard, the shards in
// parallel, and returns them in key order (for deterministic Stats; Select
// orders candidates itself).
func (q *Queue) rows(ctx context.Context) ([]queue.Item, error) {
	var byShard [queueShards][]queue.Item
	g, ctx := errgroup.WithContext(ctx)
	for sh := range queueShards {
		g.Go(func() error {
			iter := q.s.read(`SELECT key, version, item FROM refresh_queue WHERE queue = ? AND shard = ?`, q.name, sh).IterContext(ctx)
			var (
				key     string
				version int64
				raw     []byte
			)
			for iter.Scan(&key, &version, &raw) {
				it, err := decodeItem(key, version, raw)
				if err != nil {
					_ = iter.Close()
					return err
				}
				byShard[sh] = append(byShard[sh], it)
			}
			return iter.Close()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := slices.Concat(byShard[:]...)
	slices.SortFunc(out, func(a, b queue.Item) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// decodeItem decodes a stored row. The version column is authoritative: it
// is what the transactions compare.
func decodeItem(key string, version int64, raw []byte) (queue.Item, error) {
	var it queue.Item
	if err := json.Unmarshal(raw, &it); err != nil {
		return queue.Item{}, fmt.Errorf("corrupt queue row %q: %w", key, err)
	}
	it.Key = key
	it.Version = uint64(version)
	return it, nil
}

// shardOf is key's shard: FNV-1a, stable across processes and releases.
func shardOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % queueShards)
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

// pause waits a random time before a retry after a lost race, up to 5 ms
// doubled per race (at most 320 ms), so that contenders spread out.
func pause(ctx context.Context, race int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(race, 6))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
