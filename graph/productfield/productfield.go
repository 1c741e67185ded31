// Package productfield is a gqlgen plugin that writes the resolver of every
// field marked @product(name: "..."): the field's arguments become the
// product's parameters, in order, and its value is read through the cache.
// So adding a product to the API is one schema line plus its primer; no
// resolver is written by hand. Other fields keep their hand-written bodies.
package productfield

import (
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/templates"
)

// DirectiveName is the schema directive that binds a field to a product.
const DirectiveName = "product"

// Plugin implements gqlgen's plugin.ResolverImplementer.
type Plugin struct{}

// Name names the plugin.
func (Plugin) Name() string { return "productfield" }

// Implement returns the body of a field's resolver.
func (Plugin) Implement(prev string, f *codegen.Field) string {
	if body := implementTyped(f); body != "" {
		return body
	}
	d := f.FieldDefinition.Directives.ForName(DirectiveName)
	if d == nil {
		if prev != "" {
			return prev
		}
		return fmt.Sprintf("panic(fmt.Errorf(\"not implemented: %v - %v\"))", f.GoFieldName, f.Name)
	}
	arg := d.Arguments.ForName("name")
	if arg == nil || arg.Value == nil {
		return fmt.Sprintf("panic(%q)", "@product on "+f.Name+" needs a name")
	}
	if body, ok := implementSubscription(f, arg.Value.Raw); ok {
		return body
	}
	var b strings.Builder
	fmt.Fprintf(&b, "return resolveProduct[%s](ctx, r.Resolver, %q",
		templates.CurrentImports.LookupType(f.TypeReference.GO), arg.Value.Raw)
	for _, a := range f.Args {
		b.WriteString(", ")
		b.WriteString(a.VarName)
	}
	b.WriteString(")")
	return b.String()
}
