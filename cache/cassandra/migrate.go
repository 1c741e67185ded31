package cassandra

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Replication is the keyspace's replication: SimpleStrategy with a factor,
// or NetworkTopologyStrategy with a factor per datacenter.
type Replication struct {
	Factor int            // SimpleStrategy; default 1
	PerDC  map[string]int // NetworkTopologyStrategy, when set
}

func (r Replication) cql() string {
	if len(r.PerDC) > 0 {
		dcs := make([]string, 0, len(r.PerDC))
		for dc := range r.PerDC {
			dcs = append(dcs, dc)
		}
		sort.Strings(dcs)
		parts := []string{`'class': 'NetworkTopologyStrategy'`}
		for _, dc := range dcs {
			parts = append(parts, fmt.Sprintf("'%s': %d", strings.ReplaceAll(dc, "'", "''"), r.PerDC[dc]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", max(1, r.Factor))
}

// schema is the migration: every statement is idempotent (IF NOT EXISTS), so
// Migrate can run at every deploy. The keyspace statement comes first.
//
// gc_grace_seconds of cache_entries is 3 hours: a deletion's tombstone must outlive
// any primer run that started before it, and a node down longer than that
// must be repaired before it rejoins (the usual Cassandra rule, shortened
// because cache rows are cheap to recompute). (Keyspaces made before the
// change bus also hold a `changes` table, the polled feed it replaced;
// nothing reads it, and it empties itself within 10 minutes.)
// refresh_queue (queue.go)
// deletes a row for every refresh done, and a claim reads whole partitions:
// its 3-hour gc_grace_seconds keeps the tombstones those reads step over
// few. The same repair rule holds; a row done while an unrepaired node was
// away may come back with it, which costs one more refresh of that key.
func schema(keyspace string, r Replication) []string {
	return []string{
		fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s`, keyspace, r.cql()),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.cache_entries (
			key text PRIMARY KEY,
			value blob,
			codec tinyint,
			version bigint,
			computed_at bigint,
			stale_at bigint,
			expires_at bigint
		) WITH gc_grace_seconds = 10800`, keyspace),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.leases (
			name text PRIMARY KEY,
			owner text
		) WITH gc_grace_seconds = 3600`, keyspace),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.refresh_queue (
			queue text,
			shard int,
			key text,
			version bigint,
			item blob,
			PRIMARY KEY ((queue, shard), key)
		) WITH gc_grace_seconds = 10800`, keyspace),
	}
}

// ddlTimeout is the request timeout of schema statements. A schema change
// is applied on every node before the coordinator answers; on a busy cluster
// that takes longer than the 5 s a cache read or write is allowed (a DROP
// KEYSPACE took more than 5 s beside the suite's parallel load). The statements
// are idempotent, so a change that did land after a timeout is harmless.
const ddlTimeout = time.Minute

// Migrate creates the keyspace and tables when missing. It is idempotent.
func Migrate(ctx context.Context, cfg Config, r Replication) error {
	cfg = cfg.WithDefaults()
	cfg.Timeout = max(cfg.Timeout, ddlTimeout)
	if err := cfg.validate(); err != nil {
		return err
	}
	s, err := connect(ctx, cfg, "", nil)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, stmt := range schema(cfg.Keyspace, r) {
		if err := s.Query(stmt).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra migrate %s: %w", firstLine(stmt), err)
		}
	}
	if err := s.AwaitSchemaAgreement(ctx); err != nil {
		return fmt.Errorf("cassandra migrate: schema agreement: %w", err)
	}
	return nil
}

// DropKeyspace removes the keyspace and everything in it (tests).
func DropKeyspace(ctx context.Context, cfg Config) error {
	cfg = cfg.WithDefaults()
	cfg.Timeout = max(cfg.Timeout, ddlTimeout)
	if err := cfg.validate(); err != nil {
		return err
	}
	s, err := connect(ctx, cfg, "", nil)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Query(`DROP KEYSPACE IF EXISTS ` + cfg.Keyspace).ExecContext(ctx)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
