package sqlproduct_test

import (
	"testing"
	"testing/fstest"

	"github.com/kck-go/kck/source/sqlproduct"
)

// A declaration file is read at start-up from a folder its author edits:
// whatever it holds, loading it never panics, and what loads is complete
// (a product has SQL, every placeholder is a parameter).
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"-- kck:product title_list(author_id int)\n-- kck:result list\n-- kck:source titles author_id=author_id\n-- kck:domain author_ids 1m\nSELECT id FROM titles WHERE author_id = :author_id",
		"-- kck:product p(n int 1..100)\n-- kck:filter $[0].x\n-- kck:refresh cron 0 * * * *\n-- kck:warm p/1 p/2\n-- kck:warm_query SELECT 1\nSELECT :n AS x",
		"-- kck:updater u(id int?, a string)\n-- kck:key id\n-- kck:insert\nINSERT INTO t VALUES (:a) RETURNING id;\n-- kck:update\nUPDATE t SET a = :a WHERE id = :id RETURNING id;",
		"-- kck:product p(s string)\nSELECT ':not_a_param', $$:x$$, \"col:x\" -- :c\n/* :d */ FROM t WHERE s = :s",
		"-- kck:product p()\n-- kck:refresh cron TZ=\nSELECT 1",
		"-- kck:product p(id int)\n-- kck:source titles\nSELECT 1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := sqlproduct.LoadFS(fstest.MapFS{"p.sql": {Data: body}})
		if err != nil {
			return
		}
		for _, p := range d.Products {
			if p.Name == "" || p.SQL == "" {
				t.Fatalf("loaded an incomplete product %+v from %q", p, body)
			}
			for _, a := range p.Args {
				found := false
				for _, prm := range p.Params {
					found = found || prm.Name == a
				}
				if !found {
					t.Fatalf("placeholder :%s of %s is not a parameter (%q)", a, p.Name, body)
				}
			}
		}
	})
}
