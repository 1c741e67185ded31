package postgres_test

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/postgres"
	"github.com/kck-go/kck/internal/pgstoretest"
)

// Migrate creates the schema once, is idempotent, and several gateways
// migrating at once all succeed.
func TestMigrate(t *testing.T) {
	t.Parallel()
	cfg := pgstoretest.Unmigrated(t)
	var wg sync.WaitGroup
	froms := make([]int, 4)
	for i := range froms {
		wg.Go(func() {
			from, to, err := postgres.Migrate(ctx(t), cfg)
			assert.NoError(t, err)
			assert.Equal(t, postgres.Latest(), to)
			froms[i] = from
		})
	}
	wg.Wait()
	require.ElementsMatch(t, []int{0, postgres.Latest(), postgres.Latest(), postgres.Latest()}, froms, "one migrated, the others found it done")
	from, to, err := postgres.Migrate(ctx(t), cfg)
	require.NoError(t, err)
	require.Equal(t, []int{postgres.Latest(), postgres.Latest()}, []int{from, to})
	s := open(t, cfg)
	var applied int
	require.NoError(t, s.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+pgx.Identifier{cfg.Schema}.Sanitize()+`.schema_migrations`).Scan(&applied))
	require.Equal(t, postgres.Latest(), applied)
}

// A gateway pointed at a schema that is missing, behind or ahead refuses
// to start, naming kck migrate, and creates nothing.
func TestOpenRefusesUnmigrated(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		cfg := pgstoretest.Unmigrated(t)
		_, err := postgres.Open(ctx(t), cfg)
		require.ErrorIs(t, err, postgres.ErrNotMigrated)
		require.ErrorContains(t, err, "kck migrate")
		require.ErrorContains(t, err, cfg.Schema)
		other := open(t, pgstoretest.Config(t))
		var n int
		require.NoError(t, other.Pool().QueryRow(ctx(t), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, cfg.Schema).Scan(&n))
		require.Zero(t, n, "a read path creates nothing")
	})
	t.Run("behind", func(t *testing.T) {
		t.Parallel()
		cfg := pgstoretest.Config(t)
		s := open(t, cfg)
		exec(t, s, `DELETE FROM SCHEMA.schema_migrations WHERE version = $1`, postgres.Latest())
		_, err := postgres.Open(ctx(t), cfg)
		require.ErrorIs(t, err, postgres.ErrNotMigrated)
		require.ErrorContains(t, err, "kck migrate")
	})
	t.Run("ahead", func(t *testing.T) {
		t.Parallel()
		cfg := pgstoretest.Config(t)
		s := open(t, cfg)
		exec(t, s, `INSERT INTO SCHEMA.schema_migrations (version, name) VALUES ($1, 'from_the_future')`, postgres.Latest()+1)
		_, err := postgres.Open(ctx(t), cfg)
		require.ErrorIs(t, err, postgres.ErrSchemaNewer)
		require.ErrorContains(t, err, "kck migrate")
		_, _, err = postgres.Migrate(ctx(t), cfg)
		require.ErrorIs(t, err, postgres.ErrSchemaNewer, "an older kck does not touch a newer schema")
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  postgres.Config
		want string
	}{
		{"no url", postgres.Config{}, "no database URL"},
		{"bad url", postgres.Config{URL: "postgres://x:y@host:notaport/db"}, "bad database URL"},
		{"bad schema", postgres.Config{URL: "postgres://localhost/db", Schema: "Kck; DROP"}, `bad schema name "Kck; DROP"`},
		{"huge values", postgres.Config{URL: "postgres://localhost/db", MaxValueBytes: 1 << 30}, "between 1 byte and 1 GiB"},
		{"negative batch", postgres.Config{URL: "postgres://localhost/db", SweepBatch: -1}, "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			require.ErrorIs(t, err, postgres.ErrConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.NoError(t, postgres.Config{URL: "postgres://localhost/db"}.WithDefaults().Validate())
}
