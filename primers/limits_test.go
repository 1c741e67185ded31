package primers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

func rangedRegistry(t *testing.T, runs *int) *primers.Registry {
	t.Helper()
	reg := primers.NewRegistry()
	require.NoError(t, reg.Register(primers.Product{
		Name:   "top",
		Params: []primers.Param{{Name: "n", Kind: primers.Int, Range: primers.IntRange(1, 100)}},
		Primer: primers.Func1(func(_ context.Context, n int64) (int64, error) { *runs++; return n, nil }),
	}))
	require.NoError(t, reg.Register(primers.Product{
		Name:   "word",
		Params: []primers.Param{{Name: "w", Kind: primers.String}},
		Primer: primers.Func1(func(_ context.Context, w string) (string, error) { *runs++; return w, nil }),
	}))
	return reg
}

// A declared range is checked when a key is parsed or built, before any
// primer could run.
func TestParamRange(t *testing.T) {
	t.Parallel()
	var runs int
	reg := rangedRegistry(t, &runs)
	for _, in := range []string{"top/1", "top/100"} {
		_, err := reg.ParseKey(in)
		require.NoError(t, err, in)
	}
	for _, in := range []string{"top/0", "top/101", "top/-9223372036854775808"} {
		_, err := reg.ParseKey(in)
		require.ErrorIs(t, err, primers.ErrBadParams, in)
		assert.Contains(t, err.Error(), "must be between 1 and 100")
	}
	_, err := reg.Key("top", 101)
	require.ErrorIs(t, err, primers.ErrBadParams)
	_, err = reg.Key("top", 100)
	require.NoError(t, err)
	assert.Zero(t, runs)

	bad := primers.NewRegistry()
	err = bad.Register(primers.Product{Name: "x", Params: []primers.Param{{Name: "s", Kind: primers.String, Range: primers.IntRange(1, 2)}}})
	require.ErrorContains(t, err, "range")
	err = bad.Register(primers.Product{Name: "y", Params: []primers.Param{{Name: "n", Kind: primers.Int, Range: primers.IntRange(5, 1)}}})
	require.ErrorContains(t, err, "range")
}

// A key longer than MaxKeyBytes is refused, and the error does not repeat it
// whole.
func TestKeyLength(t *testing.T) {
	t.Parallel()
	var runs int
	reg := rangedRegistry(t, &runs)
	ok := "word/" + strings.Repeat("a", primers.MaxKeyBytes-len("word/"))
	_, err := reg.ParseKey(ok)
	require.NoError(t, err)

	long := "word/" + strings.Repeat("a", 15000)
	for _, s := range []string{long, "nosuch/" + strings.Repeat("b", 15000)} {
		_, err = reg.ParseKey(s)
		require.ErrorIs(t, err, primers.ErrMalformedKey)
		assert.Less(t, len(err.Error()), 300, "the error echoes the key whole")
		assert.Contains(t, err.Error(), " bytes)")
		_, err = primers.SplitName(s)
		require.ErrorIs(t, err, primers.ErrMalformedKey)
	}
	_, err = reg.Key("word", strings.Repeat("a", 15000))
	require.ErrorIs(t, err, primers.ErrMalformedKey)
	assert.Less(t, len(err.Error()), 300)
	// A multi-byte rune is not cut in half.
	_, err = reg.ParseKey("word/" + strings.Repeat("é", 1000))
	require.Error(t, err)
	assert.True(t, strings.ToValidUTF8(err.Error(), "?") == err.Error())
	assert.Zero(t, runs)
}
