// Package graph is the plain gqlgen peer of bench/peers: KCK's titleList
// field resolved by running title_list's SQL through pgx on every request,
// with no cache of any kind.
package graph

//go:generate go run ./gen

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// titleListSQL is the SQL of KCK's title_list primer (demo/sql/title_list.sql).
const titleListSQL = `SELECT id, author_id, title, year FROM titles WHERE author_id = $1 ORDER BY year, id`

// Resolver is the root resolver; DB is the pool it queries.
type Resolver struct{ DB *pgxpool.Pool }

func (r *Resolver) Query() QueryResolver { return queryResolver{r} }

type queryResolver struct{ *Resolver }

func (q queryResolver) TitleList(ctx context.Context, authorID int) ([]*Title, error) {
	rows, err := q.DB.Query(ctx, titleListSQL, authorID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Title, error) {
		var t Title
		err := row.Scan(&t.ID, &t.AuthorID, &t.Title, &t.Year)
		return &t, err
	})
}
