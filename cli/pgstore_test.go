package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/demo"
)

func TestServeFlagsForPostgresStore(t *testing.T) {
	t.Setenv("KCK_POSTGRES_URL", "")
	t.Setenv("KCK_STORE_POSTGRES_URL", "")
	_, err := parseServe([]string{"--store", "postgres"}, io.Discard)
	assert.ErrorContains(t, err, "--store postgres needs --store-postgres-url or --postgres-url (KCK_STORE_POSTGRES_URL, KCK_POSTGRES_URL)")
	cfg, err := parseServe([]string{"--store", "postgres", "--postgres-url", "postgres://db.example/shop"}, io.Discard)
	require.NoError(t, err, "the store's database defaults to the source database")
	assert.Equal(t, "kck", cfg.StorePostgres.Schema)
	assert.Equal(t, 16<<20, cfg.StorePostgres.MaxValueBytes)
	_, err = parseServe([]string{"--store", "postgres", "--store-postgres-url", "postgres://db.example/cache", "--store-postgres-schema", "Bad-Name"}, io.Discard)
	assert.ErrorContains(t, err, `bad schema name "Bad-Name"`)
	_, err = parseServe([]string{"--store", "postgres", "--store-postgres-url", "postgres://db.example/cache", "--store-postgres-max-value-bytes", "-5"}, io.Discard)
	assert.ErrorContains(t, err, "between 1 byte and 1 GiB")

	t.Setenv("KCK_STORE", "postgres")
	t.Setenv("KCK_STORE_POSTGRES_URL", "postgres://db.example/cache")
	t.Setenv("KCK_STORE_POSTGRES_SCHEMA", "shop_cache")
	t.Setenv("KCK_STORE_POSTGRES_MAX_VALUE_BYTES", "1000")
	cfg, err = parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "postgres", cfg.Store)
	assert.Equal(t, postgres.Config{URL: "postgres://db.example/cache", Schema: "shop_cache", MaxValueBytes: 1000}, cfg.StorePostgres)

	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"dump", "--store", "postgres", "--store-postgres-url="}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--store postgres needs --store-postgres-url or --postgres-url")
	assert.Equal(t, 2, run([]string{"migrate", "--store", "redis"}, &out, &errOut))
}

// The demo on the PostgreSQL store, in the source database's kck schema:
// refused until migrated (naming kck migrate), then served, its products in
// the store's table, the offline commands working beside the gateway, and
// the sweep run by the scheduler deleting what expired.
func TestServeOnPostgresStore(t *testing.T) {
	t.Parallel()
	url, _ := demoDatabase(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.PostgresURL = "postgres", url
	cfg.StorePostgres = postgres.Config{Schema: "kck", SweepInterval: time.Second, MaxValueBytes: 16 << 20}

	err := serve(t.Context(), cfg, slog.New(slog.NewTextHandler(newTestLog(t), nil)), nil)
	require.ErrorIs(t, err, postgres.ErrNotMigrated)
	require.ErrorContains(t, err, "kck migrate")

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"migrate", "--store", "postgres", "--postgres-url", url}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), fmt.Sprintf("postgres store: schema kck migrated from 0 to %d", postgres.Latest()))
	assert.Contains(t, out.String(), "change triggers installed")

	base, stop := startServe(t, cfg)
	defer func() { require.NoError(t, stop()) }()
	waitReady(t, base)
	code, body := readyz(t, base)
	require.Equal(t, http.StatusOK, code, body)
	n := titleCount(t, base)
	assert.Equal(t, float64(len(demo.NewDataset().TitlesBy(7))), n)
	resp, err := http.Get(base + "/fetch?key=top_authors/3")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	store, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	require.NoError(t, err)
	defer store.Close()
	e, err := store.Get(context.Background(), "author_stats/7")
	require.NoError(t, err, "the product is in the store's table")
	assert.Contains(t, string(e.Value), fmt.Sprintf(`"titleCount":%d`, int(n)))

	out.Reset()
	require.Equal(t, 0, run([]string{"queue", "--store", "postgres", "--store-postgres-url", url, "stats"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "depth")
	out.Reset()
	require.Equal(t, 0, run([]string{"dump", "--store", "postgres", "--store-postgres-url", url}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), `"key":"author_stats/7"`)

	_, err = store.Pool().Exec(context.Background(), `INSERT INTO kck.cache_entries (key, version, expires_at, codec, value)
		VALUES ('swept/1', 1, now() - interval '1 second', 0, '1')`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM kck.cache_entries WHERE key = 'swept/1'`).Scan(&left))
		return left == 0
	}, time.Minute, 50*time.Millisecond, "the scheduler's sweep deletes an expired entry")
	assert.Positive(t, metric(t, base, `kck_scheduler_job_runs_total{job="store/sweep",outcome="ok"}`))
}
