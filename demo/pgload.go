package demo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// SQL is the demo's SQL folder: schema.sql and the SQL declarations of the
// same products as the Go demo (title_list, author, author_stats,
// top_authors, add_title), giving the same JSON.
func SQL() fs.FS {
	sub, _ := fs.Sub(sqlFiles, "sql")
	return sub
}

// Load creates the demo tables in Postgres and fills them with ds, replacing
// what they held. Ids are kept, so keys mean the same on both.
func Load(ctx context.Context, pool *pgxpool.Pool, ds *Dataset) error {
	schema, err := fs.ReadFile(SQL(), "schema.sql")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, string(schema)); err != nil {
			return fmt.Errorf("demo schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `TRUNCATE sales, titles, authors`); err != nil {
			return err
		}
		authors, titles, sales := ds.Authors(), ds.Titles(), ds.Sales()
		copyRows := func(table string, cols []string, n int, row func(i int) []any) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
			if err != nil {
				return fmt.Errorf("demo load %s: %w", table, err)
			}
			return nil
		}
		if err := copyRows("authors", []string{"id", "name"}, len(authors), func(i int) []any {
			return []any{int32(authors[i].ID), authors[i].Name}
		}); err != nil {
			return err
		}
		if err := copyRows("titles", []string{"id", "author_id", "title", "year"}, len(titles), func(i int) []any {
			t := titles[i]
			return []any{int32(t.ID), int32(t.AuthorID), t.Title, int32(t.Year)}
		}); err != nil {
			return err
		}
		if err := copyRows("sales", []string{"id", "title_id", "region", "qty", "date"}, len(sales), func(i int) []any {
			s := sales[i]
			return []any{int32(s.ID), int32(s.TitleID), s.Region, int32(s.Qty), s.Date}
		}); err != nil {
			return err
		}
		// New rows continue after the loaded ids.
		for _, t := range []string{"titles", "sales"} {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM %s), false)`, t, t)); err != nil {
				return err
			}
		}
		return nil
	})
}
