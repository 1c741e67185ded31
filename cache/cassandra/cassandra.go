// Package cassandra is the cache.Store on Apache Cassandra: one cluster
// shared by many stateless gateways.
//
// Data model (keyspace from Config, tables created by Migrate):
//
//	cache_entries (key PRIMARY KEY, value, codec, version, computed_at, stale_at, expires_at)
//	leases  (name PRIMARY KEY, owner)                 lightweight transactions only
//	refresh_queue ((queue, shard), key; version, item) the refresh queue (queue.go), lightweight transactions only
//
// Choices, and why:
//   - Versions are write timestamps. A Put writes every column USING
//     TIMESTAMP version, and Delete writes its tombstone USING TIMESTAMP
//     version, so Cassandra's last-write-wins resolves concurrent writers of a
//     key by version, in whatever order they arrive at whichever replica, and
//     a deletion shadows every write that started before it. Versions are
//     microsecond timestamps (cache.Entry), which is the unit Cassandra uses.
//     Put first reads the stored version and skips an equal or older write, so
//     that an equal version never replaces the stored value by Cassandra's
//     tie-break on cell contents; the write timestamp alone makes concurrent
//     different versions converge. PutNew skips that read for a key the
//     cache has just found absent under a lease (cache.NewPutter).
//   - Lightweight transactions are used for leases and the refresh queue
//     only, each on its own table: Paxos and plain writes must not be mixed
//     on the same rows (a plain write with a client timestamp can be ordered
//     before a Paxos ballot and lost).
//     Values need no LWT: version ordering comes from the timestamps, and the
//     cache's compare-and-set runs under a lease.
//   - Expiry: USING TTL from ExpiresAt, so Cassandra drops expired rows; Get
//     also checks ExpiresAt, since TTL has one-second resolution.
//   - Consistency: LOCAL_QUORUM by default for reads and writes (a read sees
//     every acknowledged write with RF=3 while one replica is down), serial
//     consistency LOCAL_SERIAL for leases. Configurable.
//   - Routing: token-aware over round robin (or DC-aware round robin when a
//     local DC is set), so a request goes straight to a replica.
//   - Retries: plain reads and writes are idempotent (a timestamped write
//     applied twice is the same write), so they are marked idempotent and
//     retried up to twice with exponential backoff (50 to 500 ms) on another
//     host; lease statements are not idempotent and are never retried or
//     speculated: their caller retries with a fresh decision instead.
//   - Speculative execution: idempotent reads start a second attempt on
//     another replica after SpeculativeDelay (default 50 ms) without an
//     answer, which cuts the tail when a node stalls (GC, compaction) or has
//     just died and is not yet marked down.
//   - Timeouts: 5 s per request on the client (above Cassandra's own 2 s read
//     and write timeouts, so the server's answer arrives first), 5 s connect.
//   - Values of 1 KiB or more are compressed with zstd (codec column), which
//     typically shrinks JSON three to ten times; smaller ones are stored raw.
package cassandra

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// Config configures the connection. Zero values take the defaults noted.
type Config struct {
	// Hosts are contact points, host or host:port. Required.
	Hosts []string
	// Keyspace holds the tables. Default "kck".
	Keyspace string
	// Consistency of reads and writes. Default LOCAL_QUORUM.
	Consistency string
	// SerialConsistency of lease transactions. Default LOCAL_SERIAL.
	SerialConsistency string
	// AddressTranslator, when set, maps the addresses nodes announce to
	// those the gateway dials (a NAT, or the TCP proxies of a test that
	// cuts nodes off without stopping them).
	AddressTranslator gocql.AddressTranslator
	// AddressMap, when AddressTranslator is nil, is a fixed translation in
	// ParseAddressMap's form ("10.0.0.1:9042=203.0.113.7:19042,..."),
	// --cassandra-address-map. The contact points in Hosts are dialled as
	// given: list the dialled addresses there.
	AddressMap string
	// LocalDC, when set, keeps requests in that datacenter.
	LocalDC string
	// Username and Password for PasswordAuthenticator.
	Username, Password string
	// TLS: a CA file to verify the nodes, and a client certificate and key.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// TLSInsecureSkipVerify disables host verification (tests only).
	TLSInsecureSkipVerify bool
	// Timeout per request. Default 5 s.
	Timeout time.Duration
	// ConnectTimeout per connection attempt. Default 5 s.
	ConnectTimeout time.Duration
	// SpeculativeDelay before a second attempt of a read. Default 50 ms;
	// negative disables speculative execution.
	SpeculativeDelay time.Duration
	// CompressAbove is the value size from which values are compressed.
	// Default 1 KiB; negative disables compression.
	CompressAbove int
	// Trace records each request (each attempt, a retry or a speculative
	// one included) as a span of the read or write that made it, in a
	// sampled trace. Default off.
	Trace bool
}

// ConfigFromEnv reads KCK_CASSANDRA_HOSTS (comma-separated), _KEYSPACE,
// _CONSISTENCY, _LOCAL_DC, _ADDRESS_MAP, _USERNAME, _PASSWORD, _TLS_CA,
// _TLS_CERT, _TLS_KEY and _TLS_INSECURE.
func ConfigFromEnv() Config {
	var c Config
	for h := range strings.SplitSeq(os.Getenv("KCK_CASSANDRA_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.Hosts = append(c.Hosts, h)
		}
	}
	c.Keyspace = os.Getenv("KCK_CASSANDRA_KEYSPACE")
	c.Consistency = os.Getenv("KCK_CASSANDRA_CONSISTENCY")
	c.LocalDC = os.Getenv("KCK_CASSANDRA_LOCAL_DC")
	c.AddressMap = os.Getenv("KCK_CASSANDRA_ADDRESS_MAP")
	c.Username = os.Getenv("KCK_CASSANDRA_USERNAME")
	c.Password = os.Getenv("KCK_CASSANDRA_PASSWORD")
	c.TLSCAFile = os.Getenv("KCK_CASSANDRA_TLS_CA")
	c.TLSCertFile = os.Getenv("KCK_CASSANDRA_TLS_CERT")
	c.TLSKeyFile = os.Getenv("KCK_CASSANDRA_TLS_KEY")
	c.TLSInsecureSkipVerify = os.Getenv("KCK_CASSANDRA_TLS_INSECURE") == "true"
	return c
}

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Keyspace == "" {
		c.Keyspace = "kck"
	}
	if c.Consistency == "" {
		c.Consistency = "LOCAL_QUORUM"
	}
	if c.SerialConsistency == "" {
		c.SerialConsistency = "LOCAL_SERIAL"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.SpeculativeDelay == 0 {
		c.SpeculativeDelay = 50 * time.Millisecond
	}
	if c.CompressAbove == 0 {
		c.CompressAbove = 1 << 10
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("no hosts (set KCK_CASSANDRA_HOSTS)"))
	}
	if !validIdent(c.Keyspace) {
		errs = append(errs, fmt.Errorf("bad keyspace name %q (letters, digits, underscore)", c.Keyspace))
	}
	if _, err := parseConsistency(c.Consistency); err != nil {
		errs = append(errs, err)
	}
	if s, err := parseConsistency(c.SerialConsistency); err != nil || (s != gocql.Serial && s != gocql.LocalSerial) {
		errs = append(errs, fmt.Errorf("serial consistency must be SERIAL or LOCAL_SERIAL, not %q", c.SerialConsistency))
	}
	if _, err := ParseAddressMap(c.AddressMap); err != nil {
		errs = append(errs, fmt.Errorf("address map: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func parseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.ToUpper(s))
	if err != nil {
		return 0, fmt.Errorf("bad consistency %q", s)
	}
	return c, nil
}

// cluster builds the gocql configuration; keyspace may be empty (Migrate).
func (c Config) cluster(keyspace string) (*gocql.ClusterConfig, error) {
	cl := gocql.NewCluster(c.Hosts...)
	cl.Keyspace = keyspace
	cl.Consistency, _ = parseConsistency(c.Consistency)
	cl.SerialConsistency, _ = parseConsistency(c.SerialConsistency)
	cl.Timeout = c.Timeout
	cl.AddressTranslator = c.AddressTranslator
	if m, err := ParseAddressMap(c.AddressMap); err != nil {
		return nil, fmt.Errorf("%w: address map: %w", ErrConfig, err)
	} else if cl.AddressTranslator == nil && len(m) > 0 {
		cl.AddressTranslator = gocql.AddressTranslatorFunc(m.Translate)
	}
	cl.ConnectTimeout = c.ConnectTimeout
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	cl.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 2, Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cl.ReconnectInterval = 2 * time.Second
	cl.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 5, InitialInterval: 200 * time.Millisecond, MaxInterval: 2 * time.Second}
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	if c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSInsecureSkipVerify {
		cl.SslOpts = &gocql.SslOptions{
			CaPath: c.TLSCAFile, CertPath: c.TLSCertFile, KeyPath: c.TLSKeyFile,
			EnableHostVerification: !c.TLSInsecureSkipVerify,
			Config:                 &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	return cl, nil
}

// connect opens a session; ops, when set, counts its requests.
func connect(ctx context.Context, c Config, keyspace string, ops *opCounter) (*gocql.Session, error) {
	cl, err := c.cluster(keyspace)
	if err != nil {
		return nil, err
	}
	if ops != nil {
		cl.QueryObserver, cl.BatchObserver = ops, ops
	}
	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := cl.CreateSession()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("cassandra: cannot connect to %s: %w", strings.Join(c.Hosts, ","), r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra: cannot connect to %s: %w", strings.Join(c.Hosts, ","), ctx.Err())
	}
}

// Store is the Cassandra cache.Store.
type Store struct {
	s    *gocql.Session
	cfg  Config
	spec gocql.SpeculativeExecutionPolicy
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	ops  *opCounter
}

var (
	_ cache.Store     = (*Store)(nil)
	_ cache.NewPutter = (*Store)(nil)
	_ cache.Scanner   = (*Store)(nil)
	_ cache.OpCounter = (*Store)(nil)
)

// Errors Open returns that waiting would not cure: callers tell them apart
// with errors.Is (a gateway connects late to a cluster that is down, not to
// one it cannot use).
var (
	// ErrConfig: the Config is invalid.
	ErrConfig = errors.New("cassandra config")
	// ErrNotMigrated: the keyspace or its tables are missing.
	ErrNotMigrated = errors.New("run `kck migrate`")
)

// Open connects to the cluster and checks that the schema exists (run
// Migrate first). It fails, naming the hosts, when none answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ops := &opCounter{trace: cfg.Trace}
	s, err := connect(ctx, cfg, cfg.Keyspace, ops)
	if err != nil {
		// Tell a missing keyspace from an unreachable cluster.
		if bare, err2 := connect(ctx, cfg, "", nil); err2 == nil {
			defer bare.Close()
			var n int
			q := bare.Query(`SELECT count(*) FROM system_schema.keyspaces WHERE keyspace_name = ?`, cfg.Keyspace)
			if q.ScanContext(ctx, &n) == nil && n == 0 {
				return nil, fmt.Errorf("cassandra: keyspace %q does not exist on %s (%w)", cfg.Keyspace, strings.Join(cfg.Hosts, ","), ErrNotMigrated)
			}
		}
		return nil, err
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	st := &Store{s: s, cfg: cfg, enc: enc, dec: dec, ops: ops}
	st.spec = &gocql.NonSpeculativeExecution{}
	if cfg.SpeculativeDelay > 0 {
		st.spec = &gocql.SimpleSpeculativeExecution{NumAttempts: 1, TimeoutDelay: cfg.SpeculativeDelay}
	}
	if err := st.Ping(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.Query(`SELECT key FROM cache_entries LIMIT 1`).ExecContext(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("cassandra: keyspace %q has no kck tables (%w): %w", cfg.Keyspace, ErrNotMigrated, err)
	}
	return st, nil
}

// Close closes the session.
func (s *Store) Close() error {
	s.s.Close()
	s.dec.Close()
	return nil
}

// Session is the underlying gocql session (benchmarks compare against raw
// statements on it).
func (s *Store) Session() *gocql.Session { return s.s }

const (
	codecRaw  = 0
	codecZstd = 1
)

func (s *Store) read(stmt string, args ...any) *gocql.Query {
	return s.s.Query(stmt, args...).Idempotent(true).SetSpeculativeExecutionPolicy(s.spec)
}

func (s *Store) write(stmt string, args ...any) *gocql.Query {
	return s.s.Query(stmt, args...).Idempotent(true)
}

// lwt statements are never retried or speculated by the driver.
func (s *Store) lwt(stmt string, args ...any) *gocql.Query {
	return s.s.Query(stmt, args...).Idempotent(false).RetryPolicy(nil)
}

// Get returns the live entry of key.
func (s *Store) Get(ctx context.Context, key string) (cache.Entry, error) {
	var (
		value                          []byte
		codec                          int8
		version, computed, stale, expi int64
	)
	err := s.read(`SELECT value, codec, version, computed_at, stale_at, expires_at FROM cache_entries WHERE key = ?`, key).
		ScanContext(ctx, &value, &codec, &version, &computed, &stale, &expi)
	if errors.Is(err, gocql.ErrNotFound) {
		return cache.Entry{}, fmt.Errorf("cassandra get %q: %w", key, cache.ErrNotFound)
	}
	if err != nil {
		return cache.Entry{}, fmt.Errorf("cassandra get %q: %w", key, unavailable(err))
	}
	e := cache.Entry{Key: key, Version: uint64(version), ComputedAt: fromMicros(computed), StaleAt: fromMicros(stale), ExpiresAt: fromMicros(expi)}
	if e.Expired(time.Now()) {
		return cache.Entry{}, fmt.Errorf("cassandra get %q: %w", key, cache.ErrNotFound)
	}
	if e.Value, err = s.decodeValue(value, codec); err != nil {
		return cache.Entry{}, fmt.Errorf("cassandra get %q: %w", key, err)
	}
	return e, nil
}

func (s *Store) decodeValue(value []byte, codec int8) ([]byte, error) {
	switch codec {
	case codecRaw:
		return value, nil
	case codecZstd:
		v, err := s.dec.DecodeAll(value, nil)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return v, nil
	default:
		return nil, fmt.Errorf("unknown codec %d", codec)
	}
}

// scanPageSize is the rows per page of Scan: pages bound the memory a scan
// holds, whatever the table's size.
const scanPageSize = 500

// Scan calls fn for every live entry, for Dump (cache.Scanner), in token
// order, not key order. It decides as Get does: deleted entries are
// tombstones, which Cassandra never returns, and entries past their hard
// expiry are skipped even while their TTL, rounded up to the second, keeps
// them on disk. A value that cannot be decoded fails the scan rather than
// leaving a hole in a backup. It stops at fn's first error and returns it.
func (s *Store) Scan(ctx context.Context, fn func(cache.Entry) error) error {
	now := time.Now()
	// Not speculated: a second attempt of a page only doubles the work.
	iter := s.s.Query(`SELECT key, value, codec, version, computed_at, stale_at, expires_at FROM cache_entries`).
		Idempotent(true).PageSize(scanPageSize).IterContext(ctx)
	for {
		// Fresh variables per row: the driver scans a blob into the slice it
		// is given, and fn may keep the entry's value.
		var (
			key                            string
			value                          []byte
			codec                          int8
			version, computed, stale, expi int64
		)
		if !iter.Scan(&key, &value, &codec, &version, &computed, &stale, &expi) {
			break
		}
		if err := ctx.Err(); err != nil {
			_ = iter.Close()
			return err
		}
		e := cache.Entry{Key: key, Version: uint64(version), ComputedAt: fromMicros(computed), StaleAt: fromMicros(stale), ExpiresAt: fromMicros(expi)}
		if e.Expired(now) {
			continue
		}
		var err error
		if e.Value, err = s.decodeValue(value, codec); err != nil {
			_ = iter.Close()
			return fmt.Errorf("cassandra scan %q: %w", key, err)
		}
		if err := fn(e); err != nil {
			_ = iter.Close()
			return err
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("cassandra scan: %w", err)
	}
	return nil
}

// Put writes e at its version: the write timestamp is the version, so the
// highest version wins on every replica, in any order.
func (s *Store) Put(ctx context.Context, e cache.Entry) error {
	return s.put(ctx, e, true)
}

// PutNew is Put without the read of the stored version first: the cache
// calls it for a key it has just found absent under a lease (see
// cache.NewPutter), which saves one round trip of the two.
func (s *Store) PutNew(ctx context.Context, e cache.Entry) error {
	return s.put(ctx, e, false)
}

func (s *Store) put(ctx context.Context, e cache.Entry, checkVersion bool) error {
	if e.Version == 0 || e.Version > math.MaxInt64 {
		return fmt.Errorf("cassandra put %q: version %d out of range", e.Key, e.Version)
	}
	ttl := 0
	if !e.ExpiresAt.IsZero() {
		left := time.Until(e.ExpiresAt)
		if left <= 0 {
			return nil
		}
		ttl = int(math.Ceil(left.Seconds()))
	}
	if checkVersion {
		var stored int64
		err := s.read(`SELECT version FROM cache_entries WHERE key = ?`, e.Key).ScanContext(ctx, &stored)
		switch {
		case err == nil && uint64(stored) >= e.Version:
			return nil
		case err != nil && !errors.Is(err, gocql.ErrNotFound):
			return fmt.Errorf("cassandra put %q: %w", e.Key, unavailable(err))
		}
	}
	value, codec := e.Value, int8(codecRaw)
	if s.cfg.CompressAbove >= 0 && len(value) >= s.cfg.CompressAbove {
		value, codec = s.enc.EncodeAll(value, make([]byte, 0, len(value)/4)), codecZstd
	}
	err := s.write(`INSERT INTO cache_entries (key, value, codec, version, computed_at, stale_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?`,
		e.Key, value, codec, int64(e.Version), micros(e.ComputedAt), micros(e.StaleAt), micros(e.ExpiresAt),
		int64(e.Version), ttl).ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("cassandra put %q: %w", e.Key, unavailable(err))
	}
	return nil
}

// Delete writes a tombstone at version: it removes writes of lower or equal
// versions, including those that arrive later, and leaves newer ones.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if version > math.MaxInt64 {
		return fmt.Errorf("cassandra delete %q: version %d out of range", key, version)
	}
	if err := s.write(`DELETE FROM cache_entries USING TIMESTAMP ? WHERE key = ?`, int64(version), key).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra delete %q: %w", key, err)
	}
	return nil
}

// Acquire takes or extends a lease with a lightweight transaction.
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	// Cassandra counts a TTL from the start of the current second, so one
	// second more keeps a lease at least as long as asked.
	secs := int(math.Ceil(ttl.Seconds())) + 1
	existing := map[string]any{}
	applied, err := s.lwt(`INSERT INTO leases (name, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?`, name, owner, secs).
		MapScanCASContext(ctx, existing)
	if casUnknown(err) {
		// Under contention Paxos may time out with the outcome unknown: a
		// serial read finishes any round in flight and tells who holds it.
		holder, rerr := s.leaseHolder(ctx, name)
		if rerr != nil {
			return false, fmt.Errorf("cassandra acquire %q: %w (then: %v)", name, err, rerr)
		}
		return holder == owner, nil
	}
	if err != nil {
		return false, fmt.Errorf("cassandra acquire %q: %w", name, err)
	}
	if applied {
		return true, nil
	}
	if holder, _ := existing["owner"].(string); holder != owner {
		return false, nil
	}
	// Ours already: extend it.
	applied, err = s.lwt(`UPDATE leases USING TTL ? SET owner = ? WHERE name = ? IF owner = ?`, secs, owner, name, owner).
		ScanCASContext(ctx, new(string))
	if casUnknown(err) {
		holder, rerr := s.leaseHolder(ctx, name)
		if rerr != nil {
			return false, fmt.Errorf("cassandra extend %q: %w (then: %v)", name, err, rerr)
		}
		return holder == owner, nil
	}
	if err != nil {
		return false, fmt.Errorf("cassandra extend %q: %w", name, err)
	}
	return applied, nil
}

// Release gives up a lease held by owner.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	_, err := s.lwt(`DELETE FROM leases WHERE name = ? IF owner = ?`, name, owner).ScanCASContext(ctx, new(string))
	if casUnknown(err) {
		holder, rerr := s.leaseHolder(ctx, name)
		if rerr == nil && holder != owner {
			return nil // the delete went through (or someone else holds it now)
		}
		_, err = s.lwt(`DELETE FROM leases WHERE name = ? IF owner = ?`, name, owner).ScanCASContext(ctx, new(string))
	}
	if err != nil {
		return fmt.Errorf("cassandra release %q: %w", name, err)
	}
	return nil
}

// LeaseHolder reads who holds a lease with a plain read (no Paxos round):
// the gateways that do not lead an election look with it (see
// cluster.HolderReader). It may miss a lease taken a moment ago; the
// election's lightweight transaction decides.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var owner string
	err := s.read(`SELECT owner FROM leases WHERE name = ?`, name).ScanContext(ctx, &owner)
	if errors.Is(err, gocql.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cassandra lease %q: %w", name, unavailable(err))
	}
	return owner, nil
}

// leaseHolder reads a lease's owner at serial consistency, which completes
// any Paxos round in progress first; "" when nobody holds it.
func (s *Store) leaseHolder(ctx context.Context, name string) (string, error) {
	serial, _ := parseConsistency(s.cfg.SerialConsistency)
	var err error
	for attempt := range 4 {
		var owner string
		err = s.s.Query(`SELECT owner FROM leases WHERE name = ?`, name).Consistency(serial).ScanContext(ctx, &owner)
		if errors.Is(err, gocql.ErrNotFound) {
			return "", nil
		}
		if err == nil {
			return owner, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	return "", err
}

// casUnknown reports a lightweight transaction whose outcome is unknown:
// Paxos timed out, or the connection failed once the request may have been
// sent (a node going down resets its connections; lightweight transactions
// are not retried by the driver). The caller settles it with a serial read,
// which is right whether or not the write applied.
func casUnknown(err error) bool {
	if err == nil {
		return false
	}
	var u *gocql.RequestErrCASWriteUnknown
	var wt *gocql.RequestErrWriteTimeout
	var rt *gocql.RequestErrReadTimeout
	var ne net.Error
	return errors.As(err, &u) || errors.As(err, &wt) && wt.WriteType == "CAS" || errors.As(err, &rt) ||
		errors.Is(err, gocql.ErrConnectionClosed) || errors.Is(err, gocql.ErrTimeoutNoResponse) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

// unavailable marks err primers.ErrUnavailable when it says the cluster
// cannot serve the request now (no node reachable, too few replicas alive,
// a connection lost mid-request, no answer in time), so that the edge answers 503 "retry later"; the
// caller's own cancellation or deadline is left as it is.
func unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var (
		ru *gocql.RequestErrUnavailable
		rr *gocql.RequestErrReadTimeout
		rw *gocql.RequestErrWriteTimeout
		ne net.Error
	)
	if errors.Is(err, gocql.ErrNoConnections) || errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, gocql.ErrConnectionClosed) ||
		errors.Is(err, gocql.ErrUnavailable) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ru) || errors.As(err, &rr) || errors.As(err, &rw) || errors.As(err, &ne) {
		return primers.Unavailable("the store", err)
	}
	return err
}

// Ping checks that a node answers.
func (s *Store) Ping(ctx context.Context) error {
	var v string
	if err := s.read(`SELECT release_version FROM system.local`).ScanContext(ctx, &v); err != nil {
		return fmt.Errorf("cassandra ping %s: %w", strings.Join(s.cfg.Hosts, ","), err)
	}
	return nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
