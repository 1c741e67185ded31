package primers_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

func TestParseKeyValid(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)

	tests := []struct {
		name string
		in   string
		want string // canonical form
		args []any
	}{
		// int
		{"int", "t/42", "t/42", []any{int64(42)}},
		{"int leading zeros", "t/042", "t/42", []any{int64(42)}},
		{"int zero", "t/0", "t/0", []any{int64(0)}},
		{"int plus sign", "t/+7", "t/7", []any{int64(7)}},
		{"int minus zero", "t/-0", "t/0", []any{int64(0)}},
		{"int negative", "t/-15", "t/-15", []any{int64(-15)}},
		{"int max", "t/9223372036854775807", "t/9223372036854775807", []any{int64(math.MaxInt64)}},
		{"int min", "t/-9223372036854775808", "t/-9223372036854775808", []any{int64(math.MinInt64)}},
		{"int escaped digits", "t/%34%32", "t/42", []any{int64(42)}},
		{"title_list", "title_list/1999", "title_list/1999", []any{int64(1999)}},

		// float
		{"float", "f/1.5", "f/1.5", []any{1.5}},
		{"float trailing zero", "f/1.50", "f/1.5", []any{1.5}},
		{"float integral", "f/3", "f/3", []any{3.0}},
		{"float integral with point", "f/3.0", "f/3", []any{3.0}},
		{"float leading point", "f/.5", "f/0.5", []any{0.5}},
		{"float trailing point", "f/5.", "f/5", []any{5.0}},
		{"float exponent", "f/1e3", "f/1000", []any{1000.0}},
		{"float large exponent", "f/1e21", "f/1e+21", []any{1e21}},
		{"float large canonical", "f/1e+21", "f/1e+21", []any{1e21}},
		{"float small", "f/0.0001", "f/0.0001", []any{0.0001}},
		{"float tiny", "f/0.00001", "f/1e-05", []any{0.00001}},
		{"float shortest repr", "f/0.1", "f/0.1", []any{0.1}},
		{"float negative", "f/-2.5", "f/-2.5", []any{-2.5}},
		{"float plus sign", "f/+2.5", "f/2.5", []any{2.5}},
		{"float hex", "f/0x1p-2", "f/0.25", []any{0.25}},
		{"float max", "f/1.7976931348623157e308", "f/1.7976931348623157e+308", []any{math.MaxFloat64}},
		{"float smallest denormal", "f/4.9e-324", "f/5e-324", []any{math.SmallestNonzeroFloat64}},
		{"float underflow to zero", "f/1e-400", "f/0", []any{0.0}},
		{"float minus zero", "f/-0", "f/0", []any{0.0}},
		{"float minus zero point", "f/-0.0", "f/0", []any{0.0}},
		{"float negative underflow", "f/-1e-400", "f/0", []any{0.0}},

		// string
		{"string", "s/hello", "s/hello", []any{"hello"}},
		{"string empty", "s/", "s/", []any{""}},
		{"string escaped letter", "s/%41", "s/A", []any{"A"}},
		{"string escaped slash and percent", "s/a%2Fb%25c", "s/a%2Fb%25c", []any{"a/b%c"}},
		{"string lower-case hex", "s/a%2fb%25c", "s/a%2Fb%25c", []any{"a/b%c"}},
		{"string escaped escape", "s/%252F", "s/%252F", []any{"%2F"}},
		{"string escaped utf8", "s/h%C3%A9llo", "s/héllo", []any{"héllo"}},
		{"string raw utf8", "s/héllo", "s/héllo", []any{"héllo"}},
		{"string emoji", "s/🙂", "s/🙂", []any{"🙂"}},
		{"string escaped space", "s/a%20b", "s/a b", []any{"a b"}},
		{"string plus kept", "s/a+b", "s/a+b", []any{"a+b"}},
		{"string NUL", "s/%00", "s/\x00", []any{"\x00"}},
		{"string invalid utf8", "s/%FF", "s/\xff", []any{"\xff"}},
		{"string only escapes", "s/%2F%2F", "s/%2F%2F", []any{"//"}},

		// bool
		{"bool true", "b/true", "b/true", []any{true}},
		{"bool false", "b/false", "b/false", []any{false}},
		{"bool escaped", "b/%74rue", "b/true", []any{true}},

		// date
		{"date", "d/2024-03-01", "d/2024-03-01", []any{utc(2024, 3, 1, 0, 0, 0, 0)}},
		{"date leap day", "d/2024-02-29", "d/2024-02-29", []any{utc(2024, 2, 29, 0, 0, 0, 0)}},
		{"date year zero", "d/0000-01-01", "d/0000-01-01", []any{utc(0, 1, 1, 0, 0, 0, 0)}},
		{"date year max", "d/9999-12-31", "d/9999-12-31", []any{utc(9999, 12, 31, 0, 0, 0, 0)}},

		// timestamp
		{"timestamp", "ts/2024-03-01T12:34:56Z", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp fraction", "ts/2024-03-01T12:34:56.5Z", "ts/2024-03-01T12:34:56.5Z", []any{utc(2024, 3, 1, 12, 34, 56, 5e8)}},
		{"timestamp fraction trailing zeros", "ts/2024-03-01T12:34:56.500Z", "ts/2024-03-01T12:34:56.5Z", []any{utc(2024, 3, 1, 12, 34, 56, 5e8)}},
		{"timestamp zero fraction", "ts/2024-03-01T12:34:56.000Z", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp nanos", "ts/2024-03-01T12:34:56.123456789Z", "ts/2024-03-01T12:34:56.123456789Z", []any{utc(2024, 3, 1, 12, 34, 56, 123456789)}},
		{"timestamp comma fraction", "ts/2024-03-01T12:34:56,25Z", "ts/2024-03-01T12:34:56.25Z", []any{utc(2024, 3, 1, 12, 34, 56, 25e7)}},
		{"timestamp zero offset", "ts/2024-03-01T12:34:56+00:00", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp positive offset", "ts/2024-03-01T14:34:56+02:00", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp negative offset", "ts/2024-03-01T07:34:56-05:00", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp offset crosses day and year", "ts/2024-01-01T00:30:00+01:00", "ts/2023-12-31T23:30:00Z", []any{utc(2023, 12, 31, 23, 30, 0, 0)}},
		{"timestamp escaped plus", "ts/2024-03-01T18:04:56%2B05:30", "ts/2024-03-01T12:34:56Z", []any{utc(2024, 3, 1, 12, 34, 56, 0)}},
		{"timestamp lower bound", "ts/0000-01-01T00:00:00Z", "ts/0000-01-01T00:00:00Z", []any{utc(0, 1, 1, 0, 0, 0, 0)}},
		{"timestamp upper bound", "ts/9999-12-31T23:59:59.999999999Z", "ts/9999-12-31T23:59:59.999999999Z", []any{utc(9999, 12, 31, 23, 59, 59, 999999999)}},

		// several parameters, no parameters
		{
			"all kinds",
			"p_all/007/2.50/x%2fy/true/2024-01-02/2024-01-02T03:04:05-01:00",
			"p_all/7/2.5/x%2Fy/true/2024-01-02/2024-01-02T04:04:05Z",
			[]any{int64(7), 2.5, "x/y", true, utc(2024, 1, 2, 0, 0, 0, 0), utc(2024, 1, 2, 4, 4, 5, 0)},
		},
		{"no parameters", "none", "none", []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := reg.ParseKey(tt.in)
			require.NoError(t, err)
			assert.Equal(t, strings.SplitN(tt.in, "/", 2)[0], k.Name)
			requireArgsEqual(t, tt.args, k.Args)
			assert.Equal(t, tt.want, k.String())

			// The canonical form is a fixed point: it parses to the same
			// arguments and formats to itself.
			k2, err := reg.ParseKey(tt.want)
			require.NoError(t, err)
			assert.Equal(t, tt.want, k2.String())
			requireArgsEqual(t, k.Args, k2.Args)
		})
	}
}

func TestParseKeyErrors(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	long := strings.Repeat("a", 201)

	tests := []struct {
		name     string
		in       string
		sentinel error
		contains []string // besides the quoted key, always checked
	}{
		// malformed
		{"empty key", "", primers.ErrMalformedKey, []string{"empty key"}},
		{"empty name", "/1", primers.ErrMalformedKey, []string{"product name"}},
		{"only slash", "/", primers.ErrMalformedKey, []string{"product name"}},
		{"name starts with digit", "1t/1", primers.ErrMalformedKey, []string{"product name"}},
		{"name with dash", "t-x/1", primers.ErrMalformedKey, []string{"product name"}},
		{"name with space", "t x/1", primers.ErrMalformedKey, []string{"product name"}},
		{"name with escape", "t%41/1", primers.ErrMalformedKey, []string{"product name"}},
		{"name non-ascii", "é/1", primers.ErrMalformedKey, []string{"product name"}},
		{"name too long", long, primers.ErrMalformedKey, []string{"product name"}},
		{"bad hex escape", "s/%zz", primers.ErrMalformedKey, []string{"segment 1", "percent-escape"}},
		{"half-hex escape", "s/%4g", primers.ErrMalformedKey, []string{"segment 1", "percent-escape"}},
		{"trailing short escape", "s/%4", primers.ErrMalformedKey, []string{"segment 1", "percent-escape"}},
		{"trailing percent", "s/abc%", primers.ErrMalformedKey, []string{"segment 1", "percent-escape"}},
		{"double percent", "s/%%", primers.ErrMalformedKey, []string{"segment 1", "percent-escape"}},
		{"bad escape in later segment", "p_all/1/2/%zz/true/2024-01-01/2024-01-01T00:00:00Z", primers.ErrMalformedKey, []string{"segment 3"}},
		{"bad escape beats unknown product", "nope/%zz", primers.ErrMalformedKey, []string{"percent-escape"}},

		// unknown product
		{"unknown product", "nope/1", primers.ErrUnknownProduct, []string{"no product named nope"}},
		{"unknown product no args", "nope", primers.ErrUnknownProduct, []string{"nope"}},
		{"names are case sensitive", "T/1", primers.ErrUnknownProduct, []string{"no product named T"}},

		// wrong number of segments
		{"too few", "t", primers.ErrBadParams, []string{"t takes 1 parameters (id int), got 0"}},
		{"too many", "t/1/2", primers.ErrBadParams, []string{"(id int)", "got 2"}},
		{"too many for no params", "none/x", primers.ErrBadParams, []string{"none takes 0 parameters", "got 1"}},
		{"empty trailing segment", "none/", primers.ErrBadParams, []string{"got 1"}},
		{"too few for all", "p_all/1/2", primers.ErrBadParams, []string{"i int", "at timestamp", "got 2"}},

		// int
		{"int letters", "title_list/abc", primers.ErrBadParams, []string{"parameter year (int)", "not an integer"}},
		{"int empty", "t/", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int float", "t/1.5", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int hex", "t/0x10", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int underscore", "t/1_000", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int space", "t/%201", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int overflow", "t/9223372036854775808", primers.ErrBadParams, []string{"parameter id (int)"}},
		{"int underflow", "t/-9223372036854775809", primers.ErrBadParams, []string{"parameter id (int)"}},

		// float
		{"float NaN", "f/NaN", primers.ErrBadParams, []string{"parameter x (float)", "not a finite number"}},
		{"float nan", "f/nan", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float Inf", "f/Inf", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float +Inf", "f/+Inf", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float -Inf", "f/-Inf", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float infinity", "f/infinity", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float overflow", "f/1e400", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float letters", "f/abc", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float empty", "f/", primers.ErrBadParams, []string{"parameter x (float)"}},
		{"float comma", "f/1,5", primers.ErrBadParams, []string{"parameter x (float)"}},

		// bool
		{"bool 1", "b/1", primers.ErrBadParams, []string{"parameter flag (bool)", "not true or false"}},
		{"bool 0", "b/0", primers.ErrBadParams, []string{"parameter flag (bool)"}},
		{"bool TRUE", "b/TRUE", primers.ErrBadParams, []string{"parameter flag (bool)"}},
		{"bool True", "b/True", primers.ErrBadParams, []string{"parameter flag (bool)"}},
		{"bool t", "b/t", primers.ErrBadParams, []string{"parameter flag (bool)"}},
		{"bool yes", "b/yes", primers.ErrBadParams, []string{"parameter flag (bool)"}},
		{"bool empty", "b/", primers.ErrBadParams, []string{"parameter flag (bool)"}},

		// date
		{"date Feb 30", "d/2024-02-30", primers.ErrBadParams, []string{"parameter day (date)", "not a date"}},
		{"date Feb 29 non-leap", "d/2023-02-29", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date month 13", "d/2024-13-01", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date day 0", "d/2024-01-00", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date short month", "d/2024-1-02", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date two-digit year", "d/24-01-02", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date five-digit year", "d/10000-01-01", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date negative year", "d/-0001-01-01", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date with time", "d/2024-01-02T00:00:00Z", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date slashes escaped", "d/2024%2F01%2F02", primers.ErrBadParams, []string{"parameter day (date)"}},
		{"date empty", "d/", primers.ErrBadParams, []string{"parameter day (date)"}},

		// timestamp
		{"timestamp date only", "ts/2024-01-02", primers.ErrBadParams, []string{"parameter at (timestamp)", "RFC 3339"}},
		{"timestamp no zone", "ts/2024-01-02T03:04:05", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp space separator", "ts/2024-01-02 03:04:05Z", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp hour 25", "ts/2024-01-02T25:00:00Z", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp leap second", "ts/2016-12-31T23:59:60Z", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp bad offset", "ts/2024-01-02T03:04:05+0200", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp unix seconds", "ts/1700000000", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		// An offset can carry a valid local time out of the years a key can
		// spell (0000-9999); such a timestamp would format to a key that does
		// not parse.
		{"timestamp before year 0 in UTC", "ts/0000-01-01T00:00:00+00:01", primers.ErrBadParams, []string{"parameter at (timestamp)"}},
		{"timestamp after year 9999 in UTC", "ts/9999-12-31T23:59:59-01:00", primers.ErrBadParams, []string{"parameter at (timestamp)"}},

		// the failing parameter is named even when others are fine
		{"all kinds, bad bool", "p_all/1/2/x/yes/2024-01-01/2024-01-01T00:00:00Z", primers.ErrBadParams, []string{"parameter ok (bool)"}},
		{"all kinds, bad date", "p_all/1/2/x/true/2024-02-31/2024-01-01T00:00:00Z", primers.ErrBadParams, []string{"parameter day (date)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := reg.ParseKey(tt.in)
			require.Error(t, err, "parsed as %q", k.String())
			assert.Zero(t, k.Name)
			assert.ErrorIs(t, err, tt.sentinel)
			assert.Equal(t, 1, sentinelsWrapped(err), "error must wrap exactly one sentinel: %v", err)

			var ke *primers.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, tt.in, ke.Key)
			if len(tt.in) <= 80 {
				assert.Contains(t, err.Error(), `"`+tt.in+`"`, "message names the key")
			} else {
				assert.Contains(t, err.Error(), `"`+tt.in[:64]+"... (", "message names the start of a long key")
			}
			for _, c := range tt.contains {
				assert.Contains(t, err.Error(), c)
			}
		})
	}
}

// TestKeyFormatRoundTrip formats keys built from typed values and checks that parsing
// the result gives back the same key.
func TestKeyFormatRoundTrip(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	plus2 := time.FixedZone("plus2", 2*3600)

	tests := []struct {
		name string
		prod string
		args []any
		want string
	}{
		{"int", "t", []any{int64(42)}, "t/42"},
		{"int negative", "t", []any{int64(-1)}, "t/-1"},
		{"float", "f", []any{0.1}, "f/0.1"},
		{"float big", "f", []any{1e100}, "f/1e+100"},
		{"float third", "f", []any{1.0 / 3}, "f/0.3333333333333333"},
		{"string plain", "s", []any{"abc"}, "s/abc"},
		{"string slash and percent", "s", []any{"a/b%c"}, "s/a%2Fb%25c"},
		{"string looks escaped", "s", []any{"%41"}, "s/%2541"},
		{"string only slash", "s", []any{"/"}, "s/%2F"},
		{"string empty", "s", []any{""}, "s/"},
		{"string unicode", "s", []any{"naïve/日本"}, "s/naïve%2F日本"},
		{"bool", "b", []any{false}, "b/false"},
		{"date", "d", []any{utc(1999, 12, 31, 0, 0, 0, 0)}, "d/1999-12-31"},
		{"timestamp with offset", "ts", []any{time.Date(2024, 1, 1, 1, 0, 0, 0, plus2)}, "ts/2023-12-31T23:00:00Z"},
		{"timestamp nanos", "ts", []any{utc(2024, 1, 1, 0, 0, 0, 1)}, "ts/2024-01-01T00:00:00.000000001Z"},
		{"all", "p_all", []any{int64(1), -0.5, "%/", true, utc(2000, 2, 29, 0, 0, 0, 0), utc(2000, 2, 29, 12, 0, 0, 0)}, "p_all/1/-0.5/%25%2F/true/2000-02-29/2000-02-29T12:00:00Z"},
		{"none", "none", nil, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := reg.Key(tt.prod, tt.args...)
			require.NoError(t, err)
			s := k.String()
			assert.Equal(t, tt.want, s)

			k2, err := reg.ParseKey(s)
			require.NoError(t, err)
			assert.Equal(t, k.Name, k2.Name)
			requireArgsEqual(t, k.Args, k2.Args)
			assert.Equal(t, s, k2.String())
		})
	}
}

func TestRegistryKey(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	minus5 := time.FixedZone("minus5", -5*3600)
	plus14 := time.FixedZone("plus14", 14*3600)

	tests := []struct {
		name string
		prod string
		args []any
		want string
		vals []any
	}{
		{"int", "t", []any{42}, "t/42", []any{int64(42)}},
		{"int32", "t", []any{int32(-7)}, "t/-7", []any{int64(-7)}},
		{"int64", "t", []any{int64(math.MaxInt64)}, "t/9223372036854775807", []any{int64(math.MaxInt64)}},
		{"float64", "f", []any{1.5}, "f/1.5", []any{1.5}},
		{"float32", "f", []any{float32(0.5)}, "f/0.5", []any{0.5}},
		{"float from int", "f", []any{3}, "f/3", []any{3.0}},
		{"float from int64", "f", []any{int64(-4)}, "f/-4", []any{-4.0}},
		{"float minus zero", "f", []any{math.Copysign(0, -1)}, "f/0", []any{0.0}},
		{"string", "s", []any{"a/b%c"}, "s/a%2Fb%25c", []any{"a/b%c"}},
		{"bool", "b", []any{true}, "b/true", []any{true}},
		{"date from UTC midnight", "d", []any{utc(2024, 2, 29, 0, 0, 0, 0)}, "d/2024-02-29", []any{utc(2024, 2, 29, 0, 0, 0, 0)}},
		{"date drops time of day", "d", []any{utc(2024, 2, 29, 23, 59, 59, 999)}, "d/2024-02-29", []any{utc(2024, 2, 29, 0, 0, 0, 0)}},
		// A date is the calendar date in the value's own location, not in UTC.
		{"date keeps local calendar day", "d", []any{time.Date(2024, 2, 29, 22, 0, 0, 0, minus5)}, "d/2024-02-29", []any{utc(2024, 2, 29, 0, 0, 0, 0)}},
		{"date keeps local calendar day east", "d", []any{time.Date(2024, 3, 1, 1, 0, 0, 0, plus14)}, "d/2024-03-01", []any{utc(2024, 3, 1, 0, 0, 0, 0)}},
		{"timestamp to UTC", "ts", []any{time.Date(2024, 3, 1, 7, 34, 56, 500, minus5)}, "ts/2024-03-01T12:34:56.0000005Z", []any{utc(2024, 3, 1, 12, 34, 56, 500)}},
		{"timestamp zero value", "ts", []any{time.Time{}}, "ts/0001-01-01T00:00:00Z", []any{utc(1, 1, 1, 0, 0, 0, 0)}},
		{
			"all kinds",
			"p_all",
			[]any{int32(1), 2, "x", false, time.Date(2024, 1, 2, 23, 0, 0, 0, minus5), time.Date(2024, 1, 2, 23, 0, 0, 0, minus5)},
			"p_all/1/2/x/false/2024-01-02/2024-01-03T04:00:00Z",
			[]any{int64(1), 2.0, "x", false, utc(2024, 1, 2, 0, 0, 0, 0), utc(2024, 1, 3, 4, 0, 0, 0)},
		},
		{"none", "none", nil, "none", []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := reg.Key(tt.prod, tt.args...)
			require.NoError(t, err)
			assert.Equal(t, tt.prod, k.Name)
			requireArgsEqual(t, tt.vals, k.Args)
			assert.Equal(t, tt.want, k.String())

			k2, err := reg.ParseKey(k.String())
			require.NoError(t, err)
			requireArgsEqual(t, k.Args, k2.Args)
		})
	}
}

func TestRegistryKeyNowRoundTrips(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	now := time.Now() // carries a monotonic reading and the local zone
	k, err := reg.Key("ts", now)
	require.NoError(t, err)
	k2, err := reg.ParseKey(k.String())
	require.NoError(t, err)
	assert.True(t, now.Equal(k2.Time(0)))
	assert.Equal(t, k.String(), k2.String())
}

func TestRegistryKeyErrors(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	now := time.Now()

	tests := []struct {
		name     string
		prod     string
		args     []any
		sentinel error
		contains []string
	}{
		{"unknown product", "nope", []any{1}, primers.ErrUnknownProduct, []string{`"nope"`, "no product named nope"}},
		{"too few", "t", nil, primers.ErrBadParams, []string{`"t"`, "(id int)", "got 0"}},
		{"too many", "t", []any{1, 2}, primers.ErrBadParams, []string{"(id int)", "got 2"}},
		{"args for no params", "none", []any{1}, primers.ErrBadParams, []string{"none takes 0 parameters", "got 1"}},
		{"int from string", "t", []any{"42"}, primers.ErrBadParams, []string{"parameter id wants int, got string"}},
		{"int from float", "t", []any{1.0}, primers.ErrBadParams, []string{"parameter id wants int, got float64"}},
		{"int from uint", "t", []any{uint(1)}, primers.ErrBadParams, []string{"got uint"}},
		{"int from nil", "t", []any{nil}, primers.ErrBadParams, []string{"got <nil>"}},
		{"float from string", "f", []any{"1.5"}, primers.ErrBadParams, []string{"parameter x wants float, got string"}},
		{"float NaN", "f", []any{math.NaN()}, primers.ErrBadParams, []string{"parameter x wants float"}},
		{"float +Inf", "f", []any{math.Inf(1)}, primers.ErrBadParams, []string{"parameter x wants float"}},
		{"float -Inf", "f", []any{math.Inf(-1)}, primers.ErrBadParams, []string{"parameter x wants float"}},
		{"float32 NaN", "f", []any{float32(math.NaN())}, primers.ErrBadParams, []string{"parameter x wants float"}},
		{"float32 Inf", "f", []any{float32(math.Inf(1))}, primers.ErrBadParams, []string{"parameter x wants float"}},
		{"string from int", "s", []any{1}, primers.ErrBadParams, []string{"parameter text wants string, got int"}},
		{"string from bytes", "s", []any{[]byte("x")}, primers.ErrBadParams, []string{"got []uint8"}},
		{"bool from int", "b", []any{1}, primers.ErrBadParams, []string{"parameter flag wants bool, got int"}},
		{"bool from string", "b", []any{"true"}, primers.ErrBadParams, []string{"got string"}},
		{"date from string", "d", []any{"2024-01-01"}, primers.ErrBadParams, []string{"parameter day wants date, got string"}},
		{"date from pointer", "d", []any{&now}, primers.ErrBadParams, []string{"got *time.Time"}},
		{"timestamp from string", "ts", []any{"2024-01-01T00:00:00Z"}, primers.ErrBadParams, []string{"parameter at wants timestamp, got string"}},
		{"timestamp from int", "ts", []any{int64(1700000000)}, primers.ErrBadParams, []string{"got int64"}},
		// Years a key cannot spell: accepting them would build keys that
		// do not parse.
		{"date year 10000", "d", []any{utc(10000, 1, 1, 0, 0, 0, 0)}, primers.ErrBadParams, []string{"parameter day wants date"}},
		{"date year -1", "d", []any{utc(-1, 1, 1, 0, 0, 0, 0)}, primers.ErrBadParams, []string{"parameter day wants date"}},
		{"timestamp year 10000", "ts", []any{utc(10000, 1, 1, 0, 0, 0, 0)}, primers.ErrBadParams, []string{"parameter at wants timestamp"}},
		{"timestamp year -1 in UTC", "ts", []any{time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("plus1", 3600))}, primers.ErrBadParams, []string{"parameter at wants timestamp"}},
		{"second param wrong", "p_all", []any{1, 2.0, 3, true, now, now}, primers.ErrBadParams, []string{"parameter str wants string, got int"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := reg.Key(tt.prod, tt.args...)
			require.Error(t, err, "built %q", k.String())
			assert.ErrorIs(t, err, tt.sentinel)
			assert.Equal(t, 1, sentinelsWrapped(err), "error must wrap exactly one sentinel: %v", err)
			var ke *primers.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, tt.prod, ke.Key)
			for _, c := range tt.contains {
				assert.Contains(t, err.Error(), c)
			}
		})
	}
}

func TestKeyAccessors(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	k, err := reg.ParseKey("p_all/-3/0.25/a%2Fb/true/2024-05-06/2024-05-06T07:08:09.5+01:00")
	require.NoError(t, err)
	assert.Equal(t, int64(-3), k.Int(0))
	assert.Equal(t, 0.25, k.Float(1))
	assert.Equal(t, "a/b", k.Str(2))
	assert.True(t, k.Bool(3))
	assert.Equal(t, utc(2024, 5, 6, 0, 0, 0, 0), k.Time(4))
	assert.Equal(t, utc(2024, 5, 6, 6, 8, 9, 5e8), k.Time(5))
	assert.Equal(t, time.UTC, k.Time(5).Location())
	assert.Panics(t, func() { k.Int(1) }, "Int on a float argument")
}

// TestKeyStringUnregistered formats Keys built by hand, without a Registry.
func TestKeyStringUnregistered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  primers.Key
		want string
	}{
		{"name only", primers.Key{Name: "x"}, "x"},
		{"empty args", primers.Key{Name: "x", Args: []any{}}, "x"},
		{"mixed", primers.Key{Name: "x", Args: []any{int64(1), 1.5, "a/b%", false}}, "x/1/1.5/a%2Fb%25/false"},
		{"time defaults to timestamp", primers.Key{Name: "x", Args: []any{time.Date(2024, 1, 1, 2, 0, 0, 0, time.FixedZone("p2", 7200))}}, "x/2024-01-01T00:00:00Z"},
		{"other types via fmt, escaped", primers.Key{Name: "x", Args: []any{3, []string{"a/b"}}}, "x/3/[a%2Fb]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.key.String())
		})
	}
}

func TestSplitName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"t/1", "t", false},
		{"unregistered/anything/at all", "unregistered", false},
		{"name", "name", false},
		{"_x/%41", "_x", false},
		{"", "", true},
		{"/x", "", true},
		{"9x/1", "", true},
		{"x/%zz", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := primers.SplitName(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorIs(t, err, primers.ErrMalformedKey)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind primers.Kind
		want string
	}{
		{primers.Int, "int"},
		{primers.Float, "float"},
		{primers.String, "string"},
		{primers.Bool, "bool"},
		{primers.Date, "date"},
		{primers.Timestamp, "timestamp"},
		{0, "kind(0)"},
		{42, "kind(42)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.kind.String())
	}
}

func TestKeyErrorMessage(t *testing.T) {
	t.Parallel()
	err := &primers.KeyError{Key: "a/b", Reason: "why", Err: primers.ErrBadParams}
	assert.Equal(t, `bad parameters "a/b": why`, err.Error())
	assert.True(t, errors.Is(err, primers.ErrBadParams))
	assert.False(t, errors.Is(err, primers.ErrMalformedKey))
}
