package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kck-go/kck/scheduler"
)

// Schedule declares the demo's freshness policies, the same as the SQL
// demo's headers (demo/sql):
//
//	author       warmed at boot for every author id
//	title_list   the domain author_ids kept primed, checked every minute
//	top_authors  top_authors/10 warmed at boot, refreshed every minute
func Schedule(s *scheduler.Scheduler, ds *Dataset) error {
	return errors.Join(
		s.Product(scheduler.ProductPolicy{
			Product: "author",
			WarmKeys: func(context.Context) ([]string, error) {
				as := ds.Authors()
				keys := make([]string, len(as))
				for i, a := range as {
					keys[i] = fmt.Sprintf("author/%d", a.ID)
				}
				return keys, nil
			},
		}),
		s.Domain(scheduler.Domain{Product: "title_list", DomainKey: "author_ids", Schedule: scheduler.Every(time.Minute)}),
		s.Product(scheduler.ProductPolicy{Product: "top_authors", Warm: []string{"top_authors/10"}, Refresh: scheduler.Every(time.Minute)}),
	)
}
