package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/pgtest"
)

// A throwaway server answers, stops (refusing connections) and starts again.
func TestServerStopsAndStarts(t *testing.T) {
	t.Parallel()
	s := pgtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ping := func() error {
		c, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.Ping(ctx)
	}
	require.NoError(t, ping())
	s.Stop()
	require.Error(t, ping())
	s.Start()
	require.NoError(t, ping())
}
