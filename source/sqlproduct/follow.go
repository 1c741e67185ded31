package sqlproduct

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
)

// Tables returns, for the change-feed migration, each source table of the
// declarations with the columns the products map from it.
func (d *Declarations) Tables() map[string][]string {
	out := map[string][]string{}
	for _, p := range d.Products {
		for _, s := range p.Sources {
			seen := map[string]bool{}
			for _, c := range out[s.Table] {
				seen[c] = true
			}
			for _, c := range s.Columns {
				if !seen[c] {
					seen[c] = true
					out[s.Table] = append(out[s.Table], c)
				}
			}
			if out[s.Table] == nil {
				out[s.Table] = []string{}
			}
		}
	}
	return out
}

// Affected maps a source change to product keys: exact keys for products
// whose parameters come from the row's columns (both the old and the new
// row, so a row that moves from author 1 to 2 refreshes both), and, for
// products that depend on the whole table, the keys cached returns for them.
func (d *Declarations) Affected(reg *primers.Registry, c source.Change, cached func(product string) []string) []string {
	var keys []string
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, p := range d.Products {
		for _, s := range p.Sources {
			if s.Table != c.Table {
				continue
			}
			if s.All {
				for _, k := range cached(p.Name) {
					add(k)
				}
				continue
			}
			for _, row := range []map[string]any{c.Old, c.New} {
				if row == nil {
					continue
				}
				if k, err := keyFromRow(reg, p, s, row); err == nil {
					add(k)
				}
			}
		}
	}
	return keys
}

func keyFromRow(reg *primers.Registry, p *Product, s primers.Source, row map[string]any) (string, error) {
	args := make([]any, len(p.Params))
	for i, prm := range p.Params {
		v, ok := row[s.Columns[i]]
		if !ok || v == nil {
			return "", fmt.Errorf("no %s", s.Columns[i])
		}
		a, err := argOf(prm.Kind, v)
		if err != nil {
			return "", err
		}
		args[i] = a
	}
	k, err := reg.Key(p.Name, args...)
	if err != nil {
		return "", err
	}
	return k.String(), nil
}

func argOf(kind primers.Kind, v any) (any, error) {
	switch kind {
	case primers.Int:
		if n, ok := v.(json.Number); ok {
			return n.Int64()
		}
	case primers.Float:
		if n, ok := v.(json.Number); ok {
			return n.Float64()
		}
	case primers.String:
		if s, ok := v.(string); ok {
			return s, nil
		}
		if n, ok := v.(json.Number); ok { // e.g. a key_by sub claim from an int column
			return n.String(), nil
		}
	case primers.Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case primers.Date:
		if s, ok := v.(string); ok {
			return time.Parse(time.DateOnly, s)
		}
	case primers.Timestamp:
		if s, ok := v.(string); ok {
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05.999999Z07:00"} {
				if t, err := time.Parse(layout, s); err == nil {
					return t, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("cannot use %v (%T) as %v", v, v, kind)
}
