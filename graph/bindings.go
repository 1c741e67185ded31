package graph

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph/directives"
	"github.com/kck-go/kck/primers"
)

// CheckBindings verifies, at start-up, that every field marked @product names
// a registered product and that its arguments are the product's parameters:
// same count, same order, same names (authorId matches author_id) and
// matching types. Every mismatch is reported with the schema position.
func CheckBindings(schema *ast.Schema, reg *primers.Registry) error {
	var errs []error
	for _, def := range schema.Types {
		if def.Kind != ast.Object || strings.HasPrefix(def.Name, "__") {
			continue
		}
		for _, f := range def.Fields {
			d := f.Directives.ForName(directives.Product)
			if d == nil {
				continue
			}
			where := fmt.Sprintf("%s.%s", def.Name, f.Name)
			if f.Position != nil && f.Position.Src != nil {
				where = fmt.Sprintf("%s:%d: %s", f.Position.Src.Name, f.Position.Line, where)
			}
			name := d.Arguments.ForName("name").Value.Raw
			p := reg.Product(name)
			if p == nil {
				errs = append(errs, fmt.Errorf("%s: bound to product %q, which is not registered", where, name))
				continue
			}
			if len(f.Arguments) != len(p.Params) {
				errs = append(errs, fmt.Errorf("%s: has %d arguments but product %q has %d parameters", where, len(f.Arguments), name, len(p.Params)))
				continue
			}
			for i, a := range f.Arguments {
				prm := p.Params[i]
				if normalize(a.Name) != normalize(prm.Name) {
					errs = append(errs, fmt.Errorf("%s: argument %d is %q but product %q's parameter %d is %q", where, i+1, a.Name, name, i+1, prm.Name))
				}
				if !a.Type.NonNull || a.Type.Elem != nil || !fits(a.Type.NamedType, prm.Kind) {
					errs = append(errs, fmt.Errorf("%s: argument %s is %s but product %q's parameter %s is %v (want %s!)", where, a.Name, a.Type.String(), name, prm.Name, prm.Kind, graphqlType(prm.Kind)))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

func graphqlType(k primers.Kind) string {
	switch k {
	case primers.Int:
		return "Int"
	case primers.Float:
		return "Float"
	case primers.String:
		return "String"
	case primers.Bool:
		return "Boolean"
	case primers.Date:
		return "Date"
	case primers.Timestamp:
		return "Time"
	}
	return "?"
}

func fits(named string, k primers.Kind) bool {
	if k == primers.String && named == "ID" {
		return true
	}
	return named == graphqlType(k)
}
