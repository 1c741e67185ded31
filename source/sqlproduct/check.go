package sqlproduct

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Column is one result column of a product's query.
type Column struct {
	Name string
	Type string // PostgreSQL type name, e.g. int4, text
	OID  uint32
}

// Described is a product with the columns its query returns.
type Described struct {
	Product *Product
	Columns []Column
	Err     error // the query does not prepare
}

// Describe prepares every product's query on conn (nothing is run) and
// returns its result columns, for `kck check`.
func Describe(ctx context.Context, conn *pgx.Conn, d *Declarations) []Described {
	out := make([]Described, len(d.Products))
	types := pgtype.NewMap()
	for i, p := range d.Products {
		out[i].Product = p
		sd, err := conn.Prepare(ctx, "", p.SQL)
		if err != nil {
			out[i].Err = fmt.Errorf("%s: %w", p.File, err)
			continue
		}
		for _, f := range sd.Fields {
			name := fmt.Sprintf("oid %d", f.DataTypeOID)
			if t, ok := types.TypeForOID(f.DataTypeOID); ok {
				name = t.Name
			}
			out[i].Columns = append(out[i].Columns, Column{Name: f.Name, Type: name, OID: f.DataTypeOID})
		}
	}
	return out
}
