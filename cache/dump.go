package cache

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Scanner is a store that can list its live entries (bolt.Store can). Dump
// uses it for backups.
type Scanner interface {
	Scan(ctx context.Context, fn func(Entry) error) error
}

// dumpLine is one entry in a dump: one JSON object per line.
type dumpLine struct {
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value"`
	Version    uint64          `json:"version"`
	ComputedAt time.Time       `json:"computed_at"`
	StaleAt    *time.Time      `json:"stale_at,omitempty"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
}

// Dump writes every live entry of s to w, one JSON object per line (KCK's
// dump), and returns how many it wrote. Load reads it back.
func Dump(ctx context.Context, s Scanner, w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n := 0
	err := s.Scan(ctx, func(e Entry) error {
		l := dumpLine{Key: e.Key, Value: e.Value, Version: e.Version, ComputedAt: e.ComputedAt}
		if !e.StaleAt.IsZero() {
			l.StaleAt = &e.StaleAt
		}
		if !e.ExpiresAt.IsZero() {
			l.ExpiresAt = &e.ExpiresAt
		}
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("dump %s: %w", e.Key, err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Load puts every entry of a dump read from r into s, keeping the versions,
// and returns how many lines it read. The store's rules apply: an entry
// older than the one stored (or than a deletion) stays out, and an entry
// past its hard expiry is dropped, so loading a dump twice, or into a store
// that moved on, is harmless. Load can move a dump of one store into another
// (the embedded store into Cassandra).
func Load(ctx context.Context, s Store, r io.Reader) (int, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	n := 0
	for {
		var l dumpLine
		err := dec.Decode(&l)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("load: entry %d: %w", n+1, err)
		}
		if l.Key == "" || len(l.Value) == 0 {
			return n, fmt.Errorf("load: entry %d: key and value are required", n+1)
		}
		e := Entry{Key: l.Key, Value: []byte(l.Value), Version: l.Version, ComputedAt: l.ComputedAt}
		if l.StaleAt != nil {
			e.StaleAt = *l.StaleAt
		}
		if l.ExpiresAt != nil {
			e.ExpiresAt = *l.ExpiresAt
		}
		if err := s.Put(ctx, e); err != nil {
			return n, fmt.Errorf("load %s: %w", l.Key, err)
		}
		n++
	}
}
