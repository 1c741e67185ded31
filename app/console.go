package app

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/admin"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/scheduler"
)

// newConsole builds the operator console over what the gateway runs: the
// cache, the scheduler's plans, warming and queue (when it runs), and what
// SQL products declare.
func newConsole(c *cache.Cache, sched *scheduler.Scheduler, prods *Products, roster admin.Roster, reg *prometheus.Registry, open bool, addr string, log *slog.Logger) (*admin.Console, error) {
	o := admin.Options{Cache: c, Gatherer: reg, Open: open, Addr: addr, Logger: log, Roster: roster}
	if sched != nil {
		o.Plans = sched.Plans
		o.Queue = sched.Queue()
		o.Warm = func(ctx context.Context, product string) (scheduler.WarmReport, error) {
			return sched.Warm(ctx, product)
		}
	}
	if prods.decls.Load() != nil {
		o.Declared = func(product string) admin.Declared { return prods.declared(product) }
	}
	return admin.New(o)
}

// declared is what product's SQL header declares, for the console (the
// declarations in force: --sql-dir may be reloaded).
func (prods *Products) declared(product string) admin.Declared {
	var d admin.Declared
	decls := prods.decls.Load()
	if decls == nil {
		return d
	}
	for _, p := range decls.Products {
		if p.Name != product {
			continue
		}
		for _, s := range p.Sources {
			src := s.Table
			if s.All {
				src += " *"
			} else if len(s.Columns) > 0 {
				src += " " + strings.Join(s.Columns, " ")
			}
			d.Sources = append(d.Sources, src)
		}
		d.AfterPrimes, d.AfterUpdates = p.AfterPrimes, p.AfterUpdates
	}
	return d
}
