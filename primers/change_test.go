package primers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

// Change replaces products and updaters at once: each lookup (any
// goroutine, no lock) sees the registry before or after, never between; an
// edit that fails changes nothing.
func TestRegistryChange(t *testing.T) {
	t.Parallel()
	noop := primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 1, nil })
	up := primers.UpdaterFunc(func(context.Context, json.RawMessage) (primers.UpdateResult, error) {
		return primers.UpdateResult{}, nil
	})
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "a", Primer: noop}, primers.Product{Name: "b", Primer: noop})
	require.NoError(t, reg.RegisterUpdater("u", up))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mixed bool
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One lookup sees one registry: a and b, or c and d.
			var names []string
			for _, p := range reg.Products() {
				names = append(names, p.Name)
			}
			if s := fmt.Sprint(names); s != "[a b]" && s != "[c d]" {
				mixed = true
			}
		}
	})
	require.NoError(t, reg.Change(func(r *primers.Registry) error {
		assert.True(t, r.Unregister("a"))
		assert.True(t, r.Unregister("b"))
		assert.False(t, r.Unregister("nope"))
		assert.True(t, r.UnregisterUpdater("u"))
		if err := r.Register(primers.Product{Name: "c", Primer: noop}); err != nil {
			return err
		}
		if err := r.Register(primers.Product{Name: "d", Params: []primers.Param{{Name: "id", Kind: primers.Int}}, Primer: noop}); err != nil {
			return err
		}
		return r.RegisterUpdater("v", up)
	}))
	close(stop)
	wg.Wait()
	assert.False(t, mixed)
	assert.Nil(t, reg.Product("a"))
	assert.NotNil(t, reg.Product("d"))
	assert.Equal(t, []string{"v"}, reg.UpdaterNames())
	_, err := reg.Updater("u")
	assert.ErrorIs(t, err, primers.ErrUnknownUpdater)

	// An edit that fails leaves the registry as it was.
	boom := errors.New("boom")
	err = reg.Change(func(r *primers.Registry) error {
		r.Unregister("c")
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.NotNil(t, reg.Product("c"))
	err = reg.Change(func(r *primers.Registry) error { return r.Register(primers.Product{Name: "d", Primer: noop}) })
	require.ErrorContains(t, err, "already registered")
	assert.Len(t, reg.Products(), 2)
}
