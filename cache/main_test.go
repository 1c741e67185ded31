package cache_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts is gone when the package's tests end: each
// component waits for what it started in its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
