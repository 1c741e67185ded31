package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// titleListFunction is what PostGraphile serves as titleList(authorId).
//
//go:embed title_list.sql
var titleListFunction string

// prepareDatabase creates database name on the server of adminURL when
// absent, loads the demo into it (as `kck demo load` does: tables, rows,
// change triggers) and adds PostGraphile's function. It returns its URL.
func prepareDatabase(ctx context.Context, adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("-postgres-url: %w", err)
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	admin.Close(ctx)
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	pool, err := source.Open(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if err := demo.Load(ctx, pool, demo.NewDataset()); err != nil {
		return "", err
	}
	decls, err := sqlproduct.LoadFS(demo.SQL())
	if err == nil {
		err = source.Migrate(ctx, pool, decls.Tables())
	}
	if err == nil {
		_, err = pool.Exec(ctx, titleListFunction)
	}
	if err != nil {
		return "", fmt.Errorf("database %s: %w", name, err)
	}
	return dbURL, nil
}
