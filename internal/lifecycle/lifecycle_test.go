package lifecycle_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/lifecycle"
)

// Close cancels the group's work and returns only once every goroutine and
// counted piece of work has ended; nothing starts after it began.
func TestCloseWaitsForEverything(t *testing.T) {
	t.Parallel()
	g := lifecycle.New()
	var ended atomic.Int64
	for range 10 {
		require.True(t, g.Go(func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(time.Millisecond) // work after the cancellation, waited for
			ended.Add(1)
		}))
	}
	require.True(t, g.Enter())
	bound, release := g.Bind(context.WithoutCancel(t.Context()))
	go func() {
		<-bound.Done()
		ended.Add(1)
		release()
		g.Leave()
	}()
	g.Close()
	assert.Equal(t, int64(11), ended.Load())
	assert.True(t, g.Closing())
	assert.False(t, g.Go(func(context.Context) { t.Error("ran after Close") }))
	assert.False(t, g.Enter())
	g.Close() // again: harmless
}
