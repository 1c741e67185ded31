package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kck-go/kck/primers"
)

type domainJob struct {
	product, key string // the members' product, the key listing them
	mu           sync.Mutex
	members      map[string]bool // as of this gateway's last run; nil before it
}

// primeDomain computes the members of d that are missing and refreshes
// those that are stale.
func (s *Scheduler) primeDomain(ctx context.Context, d *domainJob, slot time.Time) error {
	r, err := s.cache.Get(ctx, d.key)
	if err != nil {
		return fmt.Errorf("domain %s: read %s: %w", d.product, d.key, err)
	}
	members, badErr := DomainMembers(s.cache.Registry(), d.product, r.Value)
	if badErr != nil {
		s.opts.Logger.Warn("domain lists members that are not keys", "domain", d.key, "product", d.product, "err", badErr)
	}
	s.m.domainMembers.WithLabelValues(d.product).Set(float64(len(members)))

	now := make(map[string]bool, len(members))
	for _, m := range members {
		now[m] = true
	}
	d.mu.Lock()
	prev := d.members
	d.members = now
	d.mu.Unlock()
	if prev != nil {
		joined, left := 0, 0
		for m := range now {
			if !prev[m] {
				joined++
			}
		}
		for m := range prev {
			if !now[m] {
				left++
			}
		}
		if joined+left > 0 {
			s.opts.Logger.Info("domain members changed", "domain", d.key, "product", d.product,
				"members", len(members), "joined", joined, "left", left)
		}
	}

	// A stale member is refreshed (through the queue when there is one). A
	// missing one is read, not refreshed: the read computes it once for the
	// cluster, while a refresh would compute it again after a gateway
	// already computing it (warming at boot, a reader's miss) stores it.
	var stale, missing []string
	for _, m := range members {
		switch s.memberState(ctx, m) {
		case memberStale:
			stale = append(stale, m)
		case memberMissing:
			missing = append(missing, m)
		}
	}
	n, firstErr := s.eachErr(ctx, missing, func(ctx context.Context, key string) error {
		_, err := s.cache.Get(ctx, key)
		return err
	})
	var primeErr error
	if n > 0 {
		primeErr = fmt.Errorf("domain %s: %d of %d missing members failed, the first: %w", d.product, n, len(missing), firstErr)
	}
	return errors.Join(badErr, primeErr, s.RefreshKeys(ctx, stale, slot))
}

type memberState int

const (
	memberPrimed memberState = iota
	memberStale
	memberMissing
)

// memberState says whether key has a fresh value in this gateway or the
// store, a stale one, or none (nothing stored, expired, or the store
// unreadable).
func (s *Scheduler) memberState(ctx context.Context, key string) memberState {
	if _, ok := s.cache.Peek(key); ok {
		return memberPrimed
	}
	e, err := s.cache.Store().Get(ctx, key)
	now := s.opts.Clock.Now()
	switch {
	case err != nil || e.Expired(now):
		return memberMissing
	case e.Stale(now):
		return memberStale
	}
	return memberPrimed
}

var segmentEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// DomainMembers turns a domain product's value into the canonical keys of
// product's members. The value is a JSON array of parameter sets: a set is
// an array of the parameters in order ([[1,"eu"],[2,"us"]]), or, for a
// product of one parameter, the parameter alone ([1,2,3]). Parameters are
// JSON numbers, strings (dates and timestamps too) or booleans, checked
// against the product's declaration. Duplicates are dropped; members that
// are not valid keys are left out and reported in the error, with the
// valid members still returned.
func DomainMembers(reg *primers.Registry, product string, value []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var sets []any
	if err := dec.Decode(&sets); err != nil {
		return nil, fmt.Errorf("domain of %s: value is not a JSON array: %w", product, err)
	}
	var (
		out  []string
		seen = map[string]bool{}
		errs []error
		bad  int
	)
	for i, set := range sets {
		params, ok := set.([]any)
		if !ok {
			params = []any{set}
		}
		var b strings.Builder
		b.WriteString(product)
		err := error(nil)
		for _, p := range params {
			var seg string
			switch v := p.(type) {
			case json.Number:
				seg = v.String()
			case string:
				seg = v
			case bool:
				seg = fmt.Sprint(v)
			default:
				err = fmt.Errorf("member %d: parameter %v is not a number, string or boolean", i, p)
			}
			b.WriteByte('/')
			b.WriteString(segmentEscaper.Replace(seg))
		}
		if err == nil {
			var k primers.Key
			if k, err = reg.ParseKey(b.String()); err == nil {
				if key := k.String(); !seen[key] {
					seen[key] = true
					out = append(out, key)
				}
				continue
			}
			err = fmt.Errorf("member %d: %w", i, err)
		}
		if bad++; bad <= 5 {
			errs = append(errs, err)
		}
	}
	if bad > 0 {
		return out, fmt.Errorf("domain of %s: %d of %d members are not keys: %w", product, bad, len(sets), errors.Join(errs...))
	}
	return out, nil
}
