package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// WarmReport says what warming did.
type WarmReport struct {
	// Keys is how many keys were warmed, Failed how many of them failed.
	Keys, Failed int
	Elapsed      time.Duration
}

// progressEvery is the longest warming goes without a progress line.
const progressEvery = 5 * time.Second

// Warm reads every key the products declare (their Warm lists and
// WarmKeys generators), and every member of each domain, through the cache,
// so that each is in this gateway's in-process tier, loaded from the store
// or computed (once across the cluster: see cache.Warm), WarmConcurrency at
// a time. Progress is logged every tenth of the keys and at least every
// 5 s, and WarmProgress reports it. A key that fails is counted and logged, not fatal; a generator that
// fails is returned, after the other keys were warmed. Start calls Warm; the
// kck warm command can call it alone. With products named, only their keys
// are warmed.
func (s *Scheduler) Warm(ctx context.Context, products ...string) (WarmReport, error) {
	start := time.Now()
	log := s.opts.Logger
	s.mu.Lock()
	warming := slices.Clone(s.warming)
	domains := slices.Clone(s.domains)
	s.mu.Unlock()
	if len(products) > 0 {
		notNamed := func(p *primers.Product) bool { return !slices.Contains(products, p.Name) }
		warming = slices.DeleteFunc(warming, notNamed)
		domains = slices.DeleteFunc(domains, notNamed)
	}

	var (
		keys    []string
		genErrs []error
		byProd  = map[string][]string{}
	)
	for _, p := range warming {
		pk := slices.Clone(p.Warm)
		if p.WarmKeys != nil {
			gen, err := p.WarmKeys(ctx)
			if err != nil {
				log.Error("warming: key generator failed", "product", p.Name, "err", err)
				genErrs = append(genErrs, fmt.Errorf("product %s: key generator: %w", p.Name, err))
			}
			pk = append(pk, gen...)
		}
		canon := make([]string, 0, len(pk))
		for _, k := range pk {
			key, err := s.cache.Registry().ParseKey(k)
			if err != nil || key.Name != p.Name {
				log.Error("warming: skipping a key that is not of its product", "product", p.Name, "key", k, "err", err)
				genErrs = append(genErrs, fmt.Errorf("product %s: bad warm key %q", p.Name, k))
				continue
			}
			canon = append(canon, key.String())
		}
		slices.Sort(canon)
		canon = slices.Compact(canon)
		byProd[p.Name] = append(byProd[p.Name], canon...)
		keys = append(keys, canon...)
	}
	s.mu.Lock()
	for p, ks := range byProd {
		s.warmed[p] = ks
	}
	s.mu.Unlock()
	// Domain members are warmed too, so that reads of them never miss from
	// boot on; the domain's process keeps them primed after that. They are
	// not added to warmed: a member that leaves the domain must stop being
	// refreshed.
	for _, p := range domains {
		r, err := s.cache.Get(ctx, p.Domain.Key)
		if err != nil {
			log.Error("warming: cannot read the domain", "product", p.Name, "domain", p.Domain.Key, "err", err)
			genErrs = append(genErrs, fmt.Errorf("domain of %s: read %s: %w", p.Name, p.Domain.Key, err))
			continue
		}
		members, err := DomainMembers(s.cache.Registry(), p.Name, r.Value)
		if err != nil {
			genErrs = append(genErrs, err)
		}
		keys = append(keys, members...)
		byProd[p.Name] = append(byProd[p.Name], members...)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	total := len(keys)
	s.warmDone.Store(0)
	s.warmTotal.Store(int64(total))
	rep := WarmReport{Keys: total}
	if total == 0 {
		rep.Elapsed = time.Since(start)
		return rep, errors.Join(genErrs...)
	}
	log.Info("warming started", "products", len(byProd), "keys_total", total)
	var done, failed atomic.Int64
	var lastLog atomic.Int64 // unix nanos of the last progress line
	lastLog.Store(start.UnixNano())
	step := max(1, total/10)
	s.cache.Warm(ctx, keys, cache.WarmOptions{Concurrency: s.opts.WarmConcurrency, OnKey: func(key string, err error) {
		if err != nil {
			failed.Add(1)
			s.m.warmKeys.WithLabelValues("failed").Inc()
			log.Warn("warming: key failed", "key", key, "err", err)
		} else {
			s.m.warmKeys.WithLabelValues("ok").Inc()
		}
		n := done.Add(1)
		s.warmDone.Add(1)
		now := time.Now().UnixNano()
		last := lastLog.Load()
		if n == int64(total) {
			return
		}
		if (n%int64(step) == 0 || now-last >= int64(progressEvery)) && lastLog.CompareAndSwap(last, now) {
			log.Info("warming progress", "keys_done", n, "keys_total", total, "keys_failed", failed.Load(),
				"elapsed_ms", time.Since(start).Milliseconds())
		}
	}})
	rep.Failed = int(failed.Load())
	rep.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		log.Warn("warming stopped", "keys_done", done.Load(), "keys_total", total, "err", err)
		return rep, err
	}
	log.Info("warming done", "keys_total", total, "keys_failed", rep.Failed, "elapsed_ms", rep.Elapsed.Milliseconds())
	return rep, errors.Join(genErrs...)
}
