package scheduler_test

import (
	"testing"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/scheduler"
)

// DomainMembers reads a product's value, which the primer (or a SQL query)
// made: whatever the bytes, it never panics, and every member it returns is
// a canonical key of the product.
func FuzzDomainMembers(f *testing.F) {
	reg := primers.NewRegistry()
	reg.MustRegister(
		primers.Product{Name: "one", Params: []primers.Param{{Name: "id", Kind: primers.Int}}},
		primers.Product{Name: "two", Params: []primers.Param{{Name: "region", Kind: primers.String}, {Name: "day", Kind: primers.Date}}},
	)
	for _, v := range []string{`[1,2,3]`, `[[1],[2]]`, `[["eu","2026-11-01"],["us/east","2026-11-02"]]`, `[1.5, "x", true, null]`, `{}`, `[[[]]]`, `[1e999]`, `["%2F"]`, ``} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, product := range []string{"one", "two"} {
			keys, _ := scheduler.DomainMembers(reg, product, value)
			for _, k := range keys {
				key, err := reg.ParseKey(k)
				if err != nil || key.String() != k || key.Name != product {
					t.Fatalf("member %q of %s from %q: not a canonical key (%v)", k, product, value, err)
				}
			}
		}
	})
}
