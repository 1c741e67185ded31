package sqlproduct

import (
	"context"
	"fmt"

	"github.com/kck-go/kck/primers"
)

// warmKeys runs p's warm query and makes a key of each row: each row is one
// parameter set, its columns in the product's parameter order.
func warmKeys(ctx context.Context, db DB, reg *primers.Registry, p *Product) ([]string, error) {
	rows, err := db.Query(ctx, p.WarmQuery)
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
