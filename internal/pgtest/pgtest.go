// Package pgtest gives tests a real PostgreSQL: the server of
// KCK_POSTGRES_URL (make test sets it), or the local one that
// scripts/postgres/up.sh installs and starts. Each test gets a database of
// its own, dropped at cleanup. Tests are never skipped for want of Postgres.
package pgtest

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/internal/scriptrun"
)

var postgres = &scriptrun.Service{
	Name:   "postgres",
	Find:   func() string { return os.Getenv("KCK_POSTGRES_URL") },
	Script: "scripts/postgres/up.sh",
}

// URL returns the URL of a running server's main database.
func URL(t testing.TB) string {
	t.Helper()
	return postgres.Addr(t)
}

// Database creates a fresh database for one test and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	base := URL(t)
	name := scriptrun.UniqueName("kck_t_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
