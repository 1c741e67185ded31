package dynamic

import (
	"context"
	"errors"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/introspection"
	"github.com/vektah/gqlparser/v2/ast"
)

// Introspection of the merged schema (__schema, __type), which the compiled
// schema's generated code cannot give: it knows its own schema only. The
// values are gqlgen's introspection package's, over the merged schema, so
// a client sees what it would of a compiled schema with the same types.

// introspect resolves a root __schema or __type field.
func (s *Schema) introspect(ctx context.Context, oc *graphql.OperationContext, f graphql.CollectedField) graphql.Marshaler {
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: s.rootType(oc.Operation.Operation), Field: f, IsMethod: true})
	if oc.DisableIntrospection {
		graphql.AddError(ctx, errors.New("introspection disabled"))
		return graphql.Null
	}
	in := &intro{oc: oc}
	var buf []byte
	switch f.Name {
	case "__schema":
		buf = in.schema(buf, introspection.WrapSchema(s.schema), f.Selections)
	default:
		name, _ := f.ArgumentMap(oc.Variables)["name"].(string)
		buf = in.typ(buf, introspection.WrapTypeFromDef(s.schema, s.schema.Types[name]), f.Selections)
	}
	return raw(buf)
}

type intro struct{ oc *graphql.OperationContext }

func (in *intro) fields(sel ast.SelectionSet, typ string) []graphql.CollectedField {
	return graphql.CollectFields(in.oc, sel, []string{typ})
}

// object writes the fields of one object by write, which writes the value
// of the field it is given.
func (in *intro) object(buf []byte, sel ast.SelectionSet, typ string, write func([]byte, graphql.CollectedField) []byte) []byte {
	buf = append(buf, '{')
	for i, f := range in.fields(sel, typ) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendQuote(buf, f.Alias)
		buf = append(buf, ':')
		if f.Name == "__typename" {
			buf = strconv.AppendQuote(buf, typ)
			continue
		}
		buf = write(buf, f)
	}
	return append(buf, '}')
}

func (in *intro) includeDeprecated(f graphql.CollectedField) bool {
	b, _ := f.ArgumentMap(in.oc.Variables)["includeDeprecated"].(bool)
	return b
}

func (in *intro) schema(buf []byte, sc *introspection.Schema, sel ast.SelectionSet) []byte {
	return in.object(buf, sel, "__Schema", func(buf []byte, f graphql.CollectedField) []byte {
		switch f.Name {
		case "description":
			return str(buf, sc.Description())
		case "types":
			return array(buf, sc.Types(), func(buf []byte, t *introspection.Type) []byte { return in.typ(buf, t, f.Selections) })
		case "queryType":
			return in.typ(buf, sc.QueryType(), f.Selections)
		case "mutationType":
			return in.typ(buf, sc.MutationType(), f.Selections)
		case "subscriptionType":
			return in.typ(buf, sc.SubscriptionType(), f.Selections)
		case "directives":
			return array(buf, sc.Directives(), func(buf []byte, d *introspection.Directive) []byte { return in.directive(buf, d, f.Selections) })
		}
		return append(buf, "null"...)
	})
}

func (in *intro) typ(buf []byte, t *introspection.Type, sel ast.SelectionSet) []byte {
	if t == nil {
		return append(buf, "null"...)
	}
	return in.object(buf, sel, "__Type", func(buf []byte, f graphql.CollectedField) []byte {
		switch f.Name {
		case "kind":
			return strconv.AppendQuote(buf, t.Kind())
		case "name":
			return str(buf, t.Name())
		case "description":
			return str(buf, t.Description())
		case "specifiedByURL":
			return str(buf, t.SpecifiedByURL())
		case "fields":
			fs := t.Fields(in.includeDeprecated(f))
			if fs == nil {
				return append(buf, "null"...)
			}
			return array(buf, fs, func(buf []byte, fd *introspection.Field) []byte { return in.field(buf, fd, f.Selections) })
		case "interfaces", "possibleTypes":
			var ts []introspection.Type
			if f.Name == "interfaces" {
				ts = t.Interfaces()
			} else {
				ts = t.PossibleTypes()
			}
			if ts == nil {
				return append(buf, "null"...)
			}
			return array(buf, ts, func(buf []byte, t *introspection.Type) []byte { return in.typ(buf, t, f.Selections) })
		case "enumValues":
			vs := t.EnumValues(in.includeDeprecated(f))
			if vs == nil {
				return append(buf, "null"...)
			}
			return array(buf, vs, func(buf []byte, v *introspection.EnumValue) []byte {
				return in.object(buf, f.Selections, "__EnumValue", func(buf []byte, f graphql.CollectedField) []byte {
					switch f.Name {
					case "name":
						return strconv.AppendQuote(buf, v.Name)
					case "description":
						return str(buf, v.Description())
					case "isDeprecated":
						return strconv.AppendBool(buf, v.IsDeprecated())
					case "deprecationReason":
						return str(buf, v.DeprecationReason())
					}
					return append(buf, "null"...)
				})
			})
		case "inputFields":
			vs := t.InputFields()
			if vs == nil {
				return append(buf, "null"...)
			}
			return in.inputValues(buf, vs, f.Selections)
		case "ofType":
			return in.typ(buf, t.OfType(), f.Selections)
		case "isOneOf":
			return strconv.AppendBool(buf, t.IsOneOf())
		}
		return append(buf, "null"...)
	})
}

func (in *intro) field(buf []byte, fd *introspection.Field, sel ast.SelectionSet) []byte {
	return in.object(buf, sel, "__Field", func(buf []byte, f graphql.CollectedField) []byte {
		switch f.Name {
		case "name":
			return strconv.AppendQuote(buf, fd.Name)
		case "description":
			return str(buf, fd.Description())
		case "args":
			return in.inputValues(buf, fd.Args, f.Selections)
		case "type":
			return in.typ(buf, fd.Type, f.Selections)
		case "isDeprecated":
			return strconv.AppendBool(buf, fd.IsDeprecated())
		case "deprecationReason":
			return str(buf, fd.DeprecationReason())
		}
		return append(buf, "null"...)
	})
}

func (in *intro) inputValues(buf []byte, vs []introspection.InputValue, sel ast.SelectionSet) []byte {
	return array(buf, vs, func(buf []byte, v *introspection.InputValue) []byte {
		return in.object(buf, sel, "__InputValue", func(buf []byte, f graphql.CollectedField) []byte {
			switch f.Name {
			case "name":
				return strconv.AppendQuote(buf, v.Name)
			case "description":
				return str(buf, v.Description())
			case "type":
				return in.typ(buf, v.Type, f.Selections)
			case "defaultValue":
				return str(buf, v.DefaultValue)
			case "isDeprecated":
				return strconv.AppendBool(buf, v.IsDeprecated())
			case "deprecationReason":
				return str(buf, v.DeprecationReason())
			}
			return append(buf, "null"...)
		})
	})
}

func (in *intro) directive(buf []byte, d *introspection.Directive, sel ast.SelectionSet) []byte {
	return in.object(buf, sel, "__Directive", func(buf []byte, f graphql.CollectedField) []byte {
		switch f.Name {
		case "name":
			return strconv.AppendQuote(buf, d.Name)
		case "description":
			return str(buf, d.Description())
		case "locations":
			return array(buf, d.Locations, func(buf []byte, l *string) []byte { return strconv.AppendQuote(buf, *l) })
		case "args":
			return in.inputValues(buf, d.Args, f.Selections)
		case "isRepeatable":
			return strconv.AppendBool(buf, d.IsRepeatable)
		}
		return append(buf, "null"...)
	})
}

// array writes xs as a JSON array, each element by each.
func array[T any](buf []byte, xs []T, each func([]byte, *T) []byte) []byte {
	buf = append(buf, '[')
	for i := range xs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = each(buf, &xs[i])
	}
	return append(buf, ']')
}

// str writes a nullable string as JSON (as gqlgen's graphql.MarshalString
// would: strconv.Quote escapes what JSON needs; no description carries
// Go's \x escapes, which only invalid UTF-8 would produce).
func str(buf []byte, s *string) []byte {
	if s == nil {
		return append(buf, "null"...)
	}
	return appendJSONString(buf, *s)
}
