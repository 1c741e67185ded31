package sqlproduct

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/scheduler"
)

// Schedule declares each product's kck:refresh, kck:warm, kck:warm_query
// and kck:domain with s. A warm query runs when s warms (at its Start): each
// row is one parameter set, its columns in the product's parameter order.
func (d *Declarations) Schedule(s *scheduler.Scheduler, pool *pgxpool.Pool, reg *primers.Registry) error {
	for _, p := range d.Products {
		pol := scheduler.ProductPolicy{Product: p.Name, Warm: p.Warm}
		if p.Refresh != "" {
			sch, err := scheduler.ParseSchedule(p.Refresh)
			if err != nil {
				return fmt.Errorf("%s: kck:refresh: %w", p.File, err)
			}
			pol.Refresh = sch
		}
		if p.WarmQuery != "" {
			pol.WarmKeys = func(ctx context.Context) ([]string, error) {
				return warmKeys(ctx, pool, reg, p)
			}
		}
		if !pol.Refresh.IsZero() || len(pol.Warm) > 0 || pol.WarmKeys != nil {
			if err := s.Product(pol); err != nil {
				return fmt.Errorf("%s: %w", p.File, err)
			}
		}
		if p.Domain != "" {
			sch, err := scheduler.ParseSchedule(p.DomainSchedule)
			if err != nil {
				return fmt.Errorf("%s: kck:domain: %w", p.File, err)
			}
			if err := s.Domain(scheduler.Domain{Product: p.Name, DomainKey: p.Domain, Schedule: sch}); err != nil {
				return fmt.Errorf("%s: %w", p.File, err)
			}
		}
	}
	return nil
}

// warmKeys runs p's warm query and makes a key of each row.
func warmKeys(ctx context.Context, pool *pgxpool.Pool, reg *primers.Registry, p *Product) ([]string, error) {
	rows, err := pool.Query(ctx, p.WarmQuery)
	if err != nil {
		return nil, fmt.Errorf("%s: kck:warm_query: %w", p.File, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("%s: kck:warm_query: %w", p.File, err)
		}
		k, err := reg.Key(p.Name, vals...)
		if err != nil {
			return nil, fmt.Errorf("%s: kck:warm_query row %d: %w", p.File, len(keys)+1, err)
		}
		keys = append(keys, k.String())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: kck:warm_query: %w", p.File, err)
	}
	return keys, nil
}
