// Package pgtest gives tests a real PostgreSQL: the server of
// KCK_POSTGRES_URL (make test sets it), or the local one that
// scripts/postgres/up.sh installs and starts. Each test gets a database of
// its own, dropped at cleanup. Tests are never skipped for want of Postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/internal/scriptrun"
)

var (
	once    sync.Once
	baseURL string
	err     error
)

// URL returns the URL of a running server's main database.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if baseURL = os.Getenv("KCK_POSTGRES_URL"); baseURL != "" {
			return
		}
		baseURL, err = scriptrun.Output("scripts/postgres/up.sh")
	})
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	return baseURL
}

// Database creates a fresh database for one test and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	base := URL(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kck_t_" + hex.EncodeToString(b[:])
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
