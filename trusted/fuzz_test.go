package trusted_test

import (
	"testing"

	"github.com/kck-go/kck/trusted"
)

// FuzzParse: any bytes are a manifest or an error wrapping ErrFormat, never
// a panic; every document a manifest holds is found by its id and text.
func FuzzParse(f *testing.F) {
	f.Add([]byte(apollo([2]string{"Titles", titles}, [2]string{"Author", author})))
	f.Add([]byte(`{"0123": "query A { a }", "sha256:ff": "{ b }"}`))
	f.Add([]byte(`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "1", "body": "{ a }"}]}`))
	f.Add([]byte(`{"operations": null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := trusted.Parse(data)
		if err != nil {
			return
		}
		_ = m.Validate(schema(t))
		for id := range ids(data) {
			if d, ok := m.Lookup(id); ok {
				if got, ok := m.LookupBody(d.Body); !ok || got.Body != d.Body {
					t.Fatalf("document %q is not found by its text", id)
				}
			}
		}
	})
}

// ids are the strings a manifest may use as ids (a cheap over-approximation:
// the JSON object's keys).
func ids(data []byte) map[string]bool {
	out := map[string]bool{}
	var m map[string]any
	if jsonUnmarshal(data, &m) == nil {
		for k := range m {
			out[k] = true
		}
	}
	return out
}
