// Package pgstoretest gives tests a PostgreSQL store of their own: a fresh
// schema in the database of KCK_POSTGRES_URL (see pgtest: started when none
// runs, never skipped), migrated, and dropped at cleanup.
package pgstoretest

import (
	"context"
	"testing"
	"time"

	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/internal/scriptrun"
)

// Unmigrated is the configuration of a schema that does not exist yet,
// dropped at cleanup if the test creates it.
func Unmigrated(t testing.TB) postgres.Config {
	t.Helper()
	cfg := postgres.Config{URL: pgtest.URL(t), Schema: scriptrun.UniqueName("pgstore_")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := postgres.DropSchema(ctx, cfg); err != nil {
			t.Logf("drop schema %s: %v", cfg.Schema, err)
		}
	})
	return cfg
}

// Config migrates a fresh schema for one test and drops it at cleanup.
func Config(t testing.TB) postgres.Config {
	t.Helper()
	cfg := Unmigrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := postgres.Migrate(ctx, cfg); err != nil {
		t.Fatalf("migrate %s: %v", cfg.Schema, err)
	}
	return cfg
}

// Open opens a store on a fresh schema; cleanup closes it.
func Open(t testing.TB) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, Config(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
