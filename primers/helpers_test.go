package primers_test

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

// testProducts declares one product per kind, a product with every kind, and a
// product without parameters. Names follow the keys used in the tests.
var testProducts = []primers.Product{
	{Name: "t", Params: []primers.Param{{Name: "id", Kind: primers.Int}}},
	{Name: "title_list", Params: []primers.Param{{Name: "year", Kind: primers.Int}}},
	{Name: "f", Params: []primers.Param{{Name: "x", Kind: primers.Float}}},
	{Name: "s", Params: []primers.Param{{Name: "text", Kind: primers.String}}},
	{Name: "b", Params: []primers.Param{{Name: "flag", Kind: primers.Bool}}},
	{Name: "d", Params: []primers.Param{{Name: "day", Kind: primers.Date}}},
	{Name: "ts", Params: []primers.Param{{Name: "at", Kind: primers.Timestamp}}},
	{Name: "p_all", Params: []primers.Param{
		{Name: "i", Kind: primers.Int},
		{Name: "fl", Kind: primers.Float},
		{Name: "str", Kind: primers.String},
		{Name: "ok", Kind: primers.Bool},
		{Name: "day", Kind: primers.Date},
		{Name: "at", Kind: primers.Timestamp},
	}},
	{Name: "none"},
}

func newTestRegistry(t testing.TB) *primers.Registry {
	t.Helper()
	r := primers.NewRegistry()
	for _, p := range testProducts {
		require.NoError(t, r.Register(p))
	}
	return r
}

var sentinels = []error{primers.ErrMalformedKey, primers.ErrUnknownProduct, primers.ErrBadParams}

// sentinelsWrapped counts how many of the key sentinels err wraps.
func sentinelsWrapped(err error) int {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// argsEqual compares Key.Args: times with Equal (and both in UTC), floats
// bit for bit (so -0 and 0 differ), everything else with reflect.DeepEqual.
func argsEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		switch x := a[i].(type) {
		case time.Time:
			y, ok := b[i].(time.Time)
			if !ok || !x.Equal(y) || x.Location() != time.UTC || y.Location() != time.UTC {
				return false
			}
		case float64:
			y, ok := b[i].(float64)
			if !ok || math.Float64bits(x) != math.Float64bits(y) {
				return false
			}
		default:
			if !reflect.DeepEqual(a[i], b[i]) {
				return false
			}
		}
	}
	return true
}

func requireArgsEqual(t testing.TB, want, got []any) {
	t.Helper()
	require.Truef(t, argsEqual(want, got), "args differ:\nwant %#v\n got %#v", want, got)
}

func utc(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}
