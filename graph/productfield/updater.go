package productfield

import (
	"fmt"
	"go/types"
	"strings"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/codegen/templates"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/graph/directives"
)

// Typed mutations. A Mutation field marked @updater(name: "...") runs that
// updater with the field's arguments as its JSON input (by name), exactly as
// update(name, input) does, auth included. Its return type, the payload, is
// bound to graph.Payload (which holds the update's outcome) and each of its
// fields is resolved here:
//
//   - @affected(name: "p"): product p as the write left it, keyed by the
//     mutation's arguments named like p's parameters;
//   - @updateResult: what the updater returned, decoded into the field's type;
//   - a [Product!]! field: the freshness of every affected product.
//
// So a typed mutation is one schema declaration, like a product field.
const (
	UpdaterDirective      = directives.Updater
	AffectedDirective     = directives.Affected
	UpdateResultDirective = directives.UpdateResult
)

// PayloadModel is the Go type every payload type is bound to.
const PayloadModel = "github.com/kck-go/kck/graph.Payload"

var _ interface {
	MutateConfig(*config.Config) error
} = Plugin{}

// MutateConfig binds each payload type to PayloadModel and refuses a payload
// field the plugin could not resolve. It runs before modelgen (the plugin is
// prepended), so no model struct is generated for the payload types.
func (Plugin) MutateConfig(cfg *config.Config) error {
	m := cfg.Schema.Mutation
	if m == nil {
		return nil
	}
	for _, f := range m.Fields {
		d := f.Directives.ForName(UpdaterDirective)
		if d == nil {
			continue
		}
		if a := d.Arguments.ForName("name"); a == nil || a.Value == nil || a.Value.Raw == "" {
			return fmt.Errorf("typed mutation %s: @updater needs a name", f.Name)
		}
		if !f.Type.NonNull || f.Type.Elem != nil {
			return fmt.Errorf("typed mutation %s: it returns its payload object type, as %s! (non-null)", f.Name, f.Type.Name())
		}
		pt := cfg.Schema.Types[f.Type.Name()]
		if pt == nil || pt.Kind != ast.Object {
			return fmt.Errorf("typed mutation %s: payload %s is not an object type", f.Name, f.Type.Name())
		}
		for _, pf := range pt.Fields {
			if payloadField(pf) == "" {
				return fmt.Errorf("payload field %s.%s: it is @affected(name: ...), @updateResult or of type [Product!]! (a list of every affected product)", pt.Name, pf.Name)
			}
			if pf.Directives.ForName(AffectedDirective) != nil && pf.Type.NonNull {
				return fmt.Errorf("%s.%s: an @affected field is nullable (a product the caller may not read is null)", pt.Name, pf.Name)
			}
		}
		if e, ok := cfg.Models[pt.Name]; ok && len(e.Model) > 0 && e.Model[0] != PayloadModel {
			return fmt.Errorf("%s: gqlgen.yml binds it to %s; payload types are bound to %s", pt.Name, e.Model[0], PayloadModel)
		}
		cfg.Models[pt.Name] = config.TypeMapEntry{Model: config.StringList{PayloadModel}}
	}
	return nil
}

// payloadField says how a payload field is resolved: "affected", "result",
// "products", or "" when it cannot be.
func payloadField(f *ast.FieldDefinition) string {
	switch {
	case len(f.Arguments) > 0:
		return ""
	case f.Directives.ForName(AffectedDirective) != nil:
		return "affected"
	case f.Directives.ForName(UpdateResultDirective) != nil:
		return "result"
	case f.Type.NonNull && f.Type.Elem != nil && f.Type.Elem.NonNull && f.Type.Elem.NamedType == "Product":
		return "products"
	}
	return ""
}

// implementTyped returns the body of a typed mutation's or payload field's
// resolver, or "" when f is neither.
func implementTyped(f *codegen.Field) string {
	if d := f.FieldDefinition.Directives.ForName(UpdaterDirective); d != nil && f.Object.Name == "Mutation" {
		var b strings.Builder
		fmt.Fprintf(&b, "return runUpdater(ctx, r.Resolver, %q, []updaterArg{", d.Arguments.ForName("name").Value.Raw)
		for i, a := range f.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{%q, %s}", a.Name, a.VarName)
		}
		b.WriteString("})")
		return b.String()
	}
	if types.TypeString(f.Object.Type, nil) != PayloadModel {
		return ""
	}
	typ := templates.CurrentImports.LookupType(f.TypeReference.GO)
	switch payloadField(f.FieldDefinition) {
	case "affected":
		name := f.FieldDefinition.Directives.ForName(AffectedDirective).Arguments.ForName("name").Value.Raw
		return fmt.Sprintf("return resolveAffected[%s](ctx, r.Resolver, obj, %q)", typ, name)
	case "result":
		return fmt.Sprintf("return decodeUpdateResult[%s](obj)", typ)
	case "products":
		return "return affectedProducts(ctx, r.Resolver, obj)"
	}
	return ""
}
