package benchdoc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/bench/internal/benchdoc"
)

func TestSplice(t *testing.T) {
	file := filepath.Join(t.TempDir(), "README.md")
	require.NoError(t, os.WriteFile(file, []byte("before\n<!-- b -->\nold\n<!-- e -->\nafter\n"), 0o644))
	require.NoError(t, benchdoc.Splice(file, "<!-- b -->", "<!-- e -->", "new\n"))
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "before\n<!-- b -->\nnew\n<!-- e -->\nafter\n", string(got))

	err = benchdoc.Splice(file, "<!-- x -->", "<!-- e -->", "new\n")
	require.Error(t, err, "no begin marker")
	assert.Contains(t, err.Error(), "<!-- x -->")
	got, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(got), "new", "a refused splice leaves the file alone")
}

func TestLoadAvg(t *testing.T) {
	f := strings.Fields(benchdoc.LoadAvg())
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		assert.Equal(t, []string{"unknown"}, f)
		return
	}
	assert.Len(t, f, 3)
}
