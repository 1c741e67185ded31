package primers_test

import (
	"errors"
	"testing"

	"github.com/kck-go/kck/primers"
)

func fuzzRegistry(t testing.TB) *primers.Registry {
	t.Helper()
	reg := primers.NewRegistry()
	reg.MustRegister(
		primers.Product{Name: "p_int", Params: []primers.Param{{Name: "n", Kind: primers.Int}}},
		primers.Product{Name: "p_float", Params: []primers.Param{{Name: "x", Kind: primers.Float}}},
		primers.Product{Name: "p_str", Params: []primers.Param{{Name: "s", Kind: primers.String}}},
		primers.Product{Name: "p_bool", Params: []primers.Param{{Name: "b", Kind: primers.Bool}}},
		primers.Product{Name: "p_date", Params: []primers.Param{{Name: "d", Kind: primers.Date}}},
		primers.Product{Name: "p_ts", Params: []primers.Param{{Name: "at", Kind: primers.Timestamp}}},
		primers.Product{Name: "p_str2", Params: []primers.Param{{Name: "a", Kind: primers.String}, {Name: "b", Kind: primers.String}}},
		primers.Product{Name: "p_all", Params: []primers.Param{
			{Name: "i", Kind: primers.Int},
			{Name: "f", Kind: primers.Float},
			{Name: "s", Kind: primers.String},
			{Name: "b", Kind: primers.Bool},
			{Name: "d", Kind: primers.Date},
			{Name: "t", Kind: primers.Timestamp},
		}},
		primers.Product{Name: "p_none"},
	)
	return reg
}

// FuzzParseKey checks that ParseKey never panics, that the String of a parsed
// key is a canonical form (it parses to the same arguments and formats to
// itself), and that every rejection wraps exactly one key sentinel.
// More seeds live in testdata/fuzz/FuzzParseKey.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"p_int/42", "p_int/042", "p_int/+0", "p_int/-9223372036854775808", "p_int/9223372036854775808",
		"p_float/1.50", "p_float/-0", "p_float/1e-400", "p_float/0x1p-2", "p_float/NaN", "p_float/1e+21",
		"p_str/", "p_str/a%2Fb%25c", "p_str/%41", "p_str/%zz", "p_str/%4", "p_str/h%C3%A9llo", "p_str/日本",
		"p_str/%FF", "p_str2//", "p_str2/%2F/%25",
		"p_bool/true", "p_bool/1",
		"p_date/2024-02-29", "p_date/2023-02-29",
		"p_ts/2024-01-01T00:30:00+01:00", "p_ts/2024-01-01T00:00:00.000000001Z", "p_ts/2024-01-01T00:00:00,5-00:30",
		"p_all/1/2.5/x%2Fy/false/2024-01-02/2024-01-02T03:04:05-01:00",
		"p_none", "p_none/", "nope/1", "", "/", "1x", "p_int//",
	} {
		f.Add(s)
	}
	reg := fuzzRegistry(f)

	f.Fuzz(func(t *testing.T, s string) {
		k, err := reg.ParseKey(s)
		if err != nil {
			if n := sentinelsWrapped(err); n != 1 {
				t.Fatalf("ParseKey(%q): error wraps %d sentinels, want 1: %v", s, n, err)
			}
			var ke *primers.KeyError
			if !errors.As(err, &ke) || ke.Key != s {
				t.Fatalf("ParseKey(%q): error is not a *KeyError naming the key: %v", s, err)
			}
			return
		}
		s2 := k.String()
		k2, err := reg.ParseKey(s2)
		if err != nil {
			t.Fatalf("ParseKey(%q) = %q, which does not parse: %v", s, s2, err)
		}
		if s3 := k2.String(); s3 != s2 {
			t.Fatalf("canonical form is not stable: %q -> %q -> %q", s, s2, s3)
		}
		if k2.Name != k.Name {
			t.Fatalf("name changed: %q -> %q", k.Name, k2.Name)
		}
		if !argsEqual(k.Args, k2.Args) {
			t.Fatalf("args changed through %q: %#v -> %#v", s2, k.Args, k2.Args)
		}
	})
}
