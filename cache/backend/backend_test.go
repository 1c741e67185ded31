package backend_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
	"github.com/kck-go/kck/queue"
)

// Check names the flag of a bad setting: the store commands (kck dump,
// load, ...) say it as kck serve does.
func TestCheck(t *testing.T) {
	t.Parallel()
	cass := func(am string) backend.Config {
		return backend.Config{Kind: backend.Cassandra, Cassandra: cassandra.Config{Hosts: []string{"127.0.0.1:40001"}, AddressMap: am}}
	}
	require.NoError(t, cass("127.0.0.21:9042=127.0.0.1:40001").Check())
	err := cass("127.0.0.21:9042=localhost:40001").Check()
	require.True(t, errors.Is(err, backend.ErrConfig), "%v", err)
	require.ErrorContains(t, err, `--cassandra-address-map (KCK_CASSANDRA_ADDRESS_MAP): pair 1 "127.0.0.21:9042=localhost:40001": dialled address`)
	require.ErrorContains(t, backend.Config{Kind: "redis"}.Check(), "--store must be embedded, cassandra or postgres")
	require.NoError(t, backend.Config{Kind: backend.Embedded, Cassandra: cassandra.Config{AddressMap: "bad"}}.Check())
}

func TestCheckPostgres(t *testing.T) {
	t.Parallel()
	pg := func(c postgres.Config) backend.Config { return backend.Config{Kind: backend.Postgres, Postgres: c} }
	const url = "postgres://kck@127.0.0.1:5432/kck"
	for _, tc := range []struct {
		name string
		cfg  backend.Config
		want string // "" for no error
	}{
		{"ok", pg(postgres.Config{URL: url}), ""},
		{"no url", pg(postgres.Config{}), "--store postgres needs --store-postgres-url or --postgres-url (KCK_STORE_POSTGRES_URL, KCK_POSTGRES_URL)"},
		{"bad schema", pg(postgres.Config{URL: url, Schema: "a-b"}), `--store-postgres-schema, --store-postgres-max-value-bytes): bad schema name "a-b"`},
		{"bad url", pg(postgres.Config{URL: "postgres://h:port/db"}), "bad database URL"},
		{"negative size", pg(postgres.Config{URL: url, MaxValueBytes: -1}), "the largest value (-1 bytes) must be between 1 byte and 1 GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, backend.ErrConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// The PostgreSQL backend migrates only when asked, refuses an unmigrated
// schema naming kck migrate, is shared (its gateways need a change bus),
// and sweeps.
func TestOpenPostgres(t *testing.T) {
	t.Parallel()
	cfg := backend.Config{Kind: backend.Postgres, Postgres: pgstoretest.Unmigrated(t)}
	_, err := backend.Open(t.Context(), cfg)
	require.ErrorIs(t, err, postgres.ErrNotMigrated)
	require.ErrorContains(t, err, "kck migrate")
	cfg.Migrate = true
	b, err := backend.Open(t.Context(), cfg)
	require.NoError(t, err)
	defer b.Close()
	require.True(t, b.Shared())
	require.Contains(t, b.Name(), cfg.Postgres.Schema)
	require.NoError(t, b.Store().Ping(t.Context()))
	q, err := b.Queue(queue.Config{})
	require.NoError(t, err)
	require.NoError(t, q.Enqueue(t.Context(), "a/1", time.Now()))
	sw, ok := b.(backend.Sweeper)
	require.True(t, ok)
	require.Equal(t, time.Minute, sw.SweepInterval())
	require.NoError(t, sw.Sweep(t.Context()))
}
