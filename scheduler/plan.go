package scheduler

import (
	"slices"

	"github.com/kck-go/kck/queue"
)

// Plan is what the scheduler does for one product, for an operator to read.
type Plan struct {
	Product string
	// Refresh is the periodic refresh ("every 1m0s", "cron 0 * * * *");
	// empty when none.
	Refresh string
	// WarmKeys are the keys listed to warm at boot; WarmGenerated says a
	// key generator adds more.
	WarmKeys      []string
	WarmGenerated bool
	// DomainKey lists the product's members when it is kept primed over a
	// domain, checked on DomainSchedule.
	DomainKey, DomainSchedule string
}

// Plans returns the declared plan of every product that has one, by
// product name.
func (s *Scheduler) Plans() map[string]Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Plan{}
	for _, p := range s.warming {
		pl := Plan{Product: p.Name, WarmKeys: slices.Clone(p.Warm), WarmGenerated: p.WarmKeys != nil}
		if !p.Refresh.IsZero() {
			pl.Refresh = p.Refresh.String()
		}
		out[p.Name] = pl
	}
	for _, p := range s.domains {
		pl := out[p.Name]
		pl.Product = p.Name
		pl.DomainKey, pl.DomainSchedule = p.Domain.Key, p.Domain.Schedule.String()
		out[p.Name] = pl
	}
	return out
}

// Queue returns the refresh queue the scheduler's jobs use (nil without one).
func (s *Scheduler) Queue() queue.Store { return s.opts.Queue }
