package cache

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/kck-go/kck/primers"
)

// instances are the keys stored in the cluster, as far as this gateway
// knows, of the products that a change of any row of a source table
// refreshes whole (primers.Source.All): the gateway that follows the
// source must name every instance of such a product, including those that
// only other gateways hold. It learns them from this gateway's writes and
// store reads, from the bus's announcements and from a scan of the store
// (SeedInstances) when it starts to follow. Other products are not
// tracked: a change names their keys.
type instances struct {
	mu     sync.Mutex
	byName map[string]map[string]time.Time // product -> key -> hard expiry (zero: none)
	n      int
	full   bool // maxInstances reached: Instances is incomplete
}

// maxInstances bounds the keys tracked (about 100 bytes each). A product
// with more instances than this, all refreshed by any row's change, is
// better served by a refresh schedule than by refreshing on every change.
const maxInstances = 1 << 20

func (in *instances) init(reg *primers.Registry) {
	in.byName = map[string]map[string]time.Time{}
	if reg == nil {
		return
	}
	for _, p := range reg.Products() {
		for _, s := range p.Sources {
			if s.All {
				in.byName[p.Name] = map[string]time.Time{}
			}
		}
	}
}

func (in *instances) set(key string) map[string]time.Time {
	name, _, _ := strings.Cut(key, "/")
	return in.byName[name]
}

// add records that key is stored, until expires. byName's keys are fixed
// at init, so a key of an untracked product costs no lock.
func (in *instances) add(key string, expires time.Time) {
	set := in.set(key)
	if set == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := set[key]; !ok {
		if in.n >= maxInstances {
			in.full = true
			return
		}
		in.n++
	}
	set[key] = expires
}

func (in *instances) remove(key string) {
	set := in.set(key)
	if set == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := set[key]; ok {
		delete(set, key)
		in.n--
	}
}

// apply follows an announcement.
func (in *instances) apply(ch Change, now time.Time) {
	if len(in.byName) == 0 || ch.SourceChanged || ch.Resync {
		return
	}
	switch {
	case ch.Deleted:
		in.remove(ch.Key)
	case ch.Entry != nil:
		if !ch.Entry.Expired(now) {
			in.add(ch.Key, ch.Entry.ExpiresAt)
		}
	default:
		in.add(ch.Key, time.Time{})
	}
}

// keys returns product's instances that have not expired at now, and
// whether the list is complete.
func (in *instances) keys(product string, now time.Time) ([]string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	set := in.byName[product]
	out := make([]string, 0, len(set))
	for k, exp := range set {
		if !exp.IsZero() && !now.Before(exp) {
			delete(set, k)
			in.n--
			continue
		}
		out = append(out, k)
	}
	return out, !in.full
}

// Instances returns the keys of product stored anywhere in the cluster as
// far as this gateway knows (see SeedInstances), for a product that a
// change of any row of a source table refreshes whole; otherwise, or when
// the product has more instances than the cache tracks, the keys this
// gateway's in-process tier holds.
func (c *Cache) Instances(product string) []string {
	if _, tracked := c.instances.byName[product]; tracked {
		if keys, complete := c.instances.keys(product, c.clock.Now()); complete {
			return keys
		}
	}
	return c.Keys(product)
}

// SeedInstances reads the keys of the tracked products from the store
// (see Instances): the gateway that starts to follow the source tables
// calls it, since announcements made before this gateway started never
// reached it.
func (c *Cache) SeedInstances(ctx context.Context, sc Scanner) error {
	if len(c.instances.byName) == 0 {
		return nil
	}
	return sc.Scan(ctx, func(e Entry) error {
		c.instances.add(e.Key, e.ExpiresAt)
		return nil
	})
}
