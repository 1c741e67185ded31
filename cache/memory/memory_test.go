package memory_test

import (
	"testing"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/memory"
)

func TestContract(t *testing.T) {
	t.Parallel()
	cachetest.Run(t, func(*testing.T) cache.Store { return memory.New() })
}
