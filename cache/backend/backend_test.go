package backend_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache/backend"
	"github.com/kck-go/kck/cache/cassandra"
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
	require.ErrorContains(t, backend.Config{Kind: "redis"}.Check(), "--store must be embedded or cassandra")
	require.NoError(t, backend.Config{Kind: backend.Embedded, Cassandra: cassandra.Config{AddressMap: "bad"}}.Check())
}
