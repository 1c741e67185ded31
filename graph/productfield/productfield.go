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

	"github.com/kck-go/kck/graph/directives"
)

// DirectiveName is the schema directive that binds a field to a product.
const DirectiveName = directives.Product

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
	fn, root := helper("resolveProduct")
	fmt.Fprintf(&b, "return %s[%s](ctx, %s, %q",
		fn, templates.CurrentImports.LookupType(f.TypeReference.GO), root, arg.Value.Raw)
	for _, a := range f.Args {
		b.WriteString(", ")
		b.WriteString(a.VarName)
	}
	b.WriteString(")")
	return b.String()
}

// graphPackage is KCK's GraphQL package, where the helpers the written
// resolvers call live.
const graphPackage = "github.com/kck-go/kck/graph"

// helper names one of package graph's resolver helpers and the KCK
// resolver to pass it. In package graph itself: the unexported helper and
// r.Resolver. In an application's own gqlgen package (examples/own-module),
// whose Resolver embeds *graph.Resolver: the exported helper, qualified,
// and r.KCK().
func helper(name string) (fn, root string) {
	if templates.CurrentImports == nil {
		return name, "r.Resolver"
	}
	alias := templates.CurrentImports.Lookup(graphPackage)
	if alias == "" {
		return name, "r.Resolver"
	}
	return alias + "." + strings.ToUpper(name[:1]) + name[1:], "r.KCK()"
}
