package main

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// sqlProducts are the module's SQL products, served by KCK beside the Go ones.
func sqlProducts() fs.FS {
	sub, err := fs.Sub(sqlFiles, "sql")
	if err != nil {
		panic(err) // the embedded folder is there: a build error otherwise
	}
	return sub
}

// Book is one row of shelf_books/{shelf_id}.
type Book struct {
	ID      int64  `json:"id"`
	ShelfID int64  `json:"shelfId"`
	Title   string `json:"title"`
	Pages   int64  `json:"pages"`
}

// ShelfStats is the value of shelf_stats/{shelf_id}.
type ShelfStats struct {
	ShelfID      int64  `json:"shelfId"`
	Books        int    `json:"books"`
	Pages        int64  `json:"pages"`
	LongestTitle string `json:"longestTitle"`
}

// register migrates the module's table and registers its Go product. db is
// the --postgres-url database.
func register(reg *primers.Registry, db *pgxpool.Pool) error {
	if db == nil {
		return fmt.Errorf("titles needs --postgres-url (or KCK_POSTGRES_URL)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrate(ctx, db); err != nil {
		return err
	}
	return reg.Register(primers.Product{
		Name:   "shelf_stats",
		Params: []primers.Param{{Name: "shelf_id", Kind: primers.Int}},
		Auth:   primers.Auth{Public: true},
		// Read through the cache: KCK records that shelf_stats depends on
		// shelf_books and recomputes it whenever that shelf's books change.
		Primer: primers.Func1(func(ctx context.Context, shelf int64) (ShelfStats, error) {
			var books []Book
			if err := primers.Read(ctx, "shelf_books/"+strconv.FormatInt(shelf, 10), &books); err != nil {
				return ShelfStats{}, err
			}
			st := ShelfStats{ShelfID: shelf, Books: len(books)}
			for _, b := range books {
				st.Pages += b.Pages
				if len(b.Title) > len(st.LongestTitle) {
					st.LongestTitle = b.Title
				}
			}
			return st, nil
		}),
		SoftTTL: time.Minute,
		TTL:     time.Hour,
	})
}

// migrate creates the books table and installs KCK's change triggers on the
// SQL products' source tables; both are idempotent.
func migrate(ctx context.Context, db *pgxpool.Pool) error {
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS books (
		id       serial PRIMARY KEY,
		shelf_id integer NOT NULL,
		title    text NOT NULL,
		pages    integer NOT NULL CHECK (pages > 0))`); err != nil {
		return fmt.Errorf("create books: %w", err)
	}
	decls, err := sqlproduct.LoadFS(sqlProducts())
	if err != nil {
		return err
	}
	return source.Migrate(ctx, db, decls.Tables())
}
