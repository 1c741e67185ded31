package graph

import (
	"maps"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// SDL prints the schema as a client sees it through introspection, in
// the schema definition language: every type, field, argument and
// directive definition with its description, types in name order (as
// gqlparser's formatter and gqlgen's introspection order them). What
// introspection cannot show is left out: the applications of directives
// other than @deprecated, @specifiedBy and @oneOf (@product, @updater and
// the like are the server's business). The built-in scalars and the
// directives of the GraphQL specification are left out too, as every
// client knows them; @defer, which gqlparser defines and introspection
// lists but the specification does not, is printed. `kck schema` prints
// this, for GraphQL Code Generator and the like when introspection is off.
func SDL(s *ast.Schema) string {
	c := &ast.Schema{
		Query: s.Query, Mutation: s.Mutation, Subscription: s.Subscription,
		Types:      make(map[string]*ast.Definition, len(s.Types)),
		Directives: make(map[string]*ast.DirectiveDefinition, len(s.Directives)),
	}
	for name, d := range s.Directives {
		if specDirective(name) && d.Position != nil && d.Position.Src != nil && d.Position.Src.BuiltIn {
			continue
		}
		d := *d
		d.Position = nil // a built-in one not in the specification: shown
		c.Directives[name] = &d
	}
	for name, def := range s.Types {
		d := *def
		d.Directives = shown(def.Directives)
		d.Fields = make(ast.FieldList, len(def.Fields))
		for i, f := range def.Fields {
			f := *f
			f.Directives = shown(f.Directives)
			f.Arguments = make(ast.ArgumentDefinitionList, len(f.Arguments))
			for j, a := range def.Fields[i].Arguments {
				a := *a
				a.Directives = shown(a.Directives)
				f.Arguments[j] = &a
			}
			d.Fields[i] = &f
		}
		d.EnumValues = make(ast.EnumValueList, len(def.EnumValues))
		for i, v := range def.EnumValues {
			v := *v
			v.Directives = shown(v.Directives)
			d.EnumValues[i] = &v
		}
		c.Types[name] = &d
	}
	// One definition at a time, in the formatter's order (the schema
	// block, directives, types, each by name), with a blank line between
	// them, for people reading a diff of it.
	var parts []*ast.Schema
	root := &ast.Schema{Query: c.Query, Mutation: c.Mutation, Subscription: c.Subscription}
	parts = append(parts, root)
	for _, name := range slices.Sorted(maps.Keys(c.Directives)) {
		parts = append(parts, &ast.Schema{Directives: map[string]*ast.DirectiveDefinition{name: c.Directives[name]}})
	}
	for _, name := range slices.Sorted(maps.Keys(c.Types)) {
		parts = append(parts, &ast.Schema{Types: map[string]*ast.Definition{name: c.Types[name]}})
	}
	var b strings.Builder
	for _, p := range parts {
		var one strings.Builder
		formatter.NewFormatter(&one, formatter.WithIndent("  ")).FormatSchema(p)
		if one.Len() == 0 {
			continue // the schema block when the roots have their usual names; a built-in type
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(one.String())
	}
	return b.String()
}

// specDirective reports whether name is a directive of the GraphQL
// specification, which every client defines itself.
func specDirective(name string) bool {
	switch name {
	case "include", "skip", "deprecated", "specifiedBy", "oneOf":
		return true
	}
	return false
}

// shown keeps the directive applications introspection reports.
func shown(l ast.DirectiveList) ast.DirectiveList {
	var out ast.DirectiveList
	for _, d := range l {
		switch d.Name {
		case "deprecated", "specifiedBy", "oneOf":
			out = append(out, d)
		}
	}
	return out
}
