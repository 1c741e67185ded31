package productfield

import (
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/templates"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// SubscriptionsSource names the schema source the Subscriptions plugin
// writes; its resolvers go to graph/product_subscriptions.resolvers.go.
const SubscriptionsSource = "product_subscriptions.graphqls"

// Subscriptions is a gqlgen plugin that gives every @product field of Query
// a Subscription field of the same name, arguments, type and directive: a
// subscriber gets the product's current value, then each new version. It
// writes `extend type Subscription { ... }` when the schema declares
// `type Subscription` (ours does, with the hand-written product(key,
// sinceVersion)), else `type Subscription { ... }`.
// Plugin.Implement writes the resolvers (gqlgen allows one implementer).
type Subscriptions struct{}

// Name names the plugin.
func (Subscriptions) Name() string { return "productfield-subscriptions" }

// InjectSourcesLate implements plugin.LateSourcesInjector.
func (Subscriptions) InjectSourcesLate(schema *ast.Schema) ([]*ast.Source, error) {
	if schema.Query == nil {
		return nil, nil
	}
	var fields ast.FieldList
	for _, f := range schema.Query.Fields {
		if f.Directives.ForName(DirectiveName) == nil {
			continue
		}
		if schema.Subscription != nil && schema.Subscription.Fields.ForName(f.Name) != nil {
			return nil, fmt.Errorf("field %s of Subscription is written by hand: the productfield plugin writes a subscription for every @product field", f.Name)
		}
		c := *f
		c.Position = nil
		c.Description = "Pushes " + f.Name + ": its current value at once, then each new version, from any gateway."
		fields = append(fields, &c)
	}
	if len(fields) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString("# Written by the productfield plugin: one subscription per @product query field.\n")
	doc := &ast.SchemaDocument{}
	def := &ast.Definition{Kind: ast.Object, Name: "Subscription", Fields: fields}
	if schema.Subscription != nil {
		doc.Extensions = ast.DefinitionList{def}
	} else {
		doc.Definitions = ast.DefinitionList{def} // no hand-written subscription
	}
	formatter.NewFormatter(&b).FormatSchemaDocument(doc)
	return []*ast.Source{{Name: SubscriptionsSource, Input: b.String()}}, nil
}

// implementSubscription writes the body of a @product Subscription field.
func implementSubscription(f *codegen.Field, product string) (string, bool) {
	if f.Object == nil || f.Object.Definition == nil || f.Object.Definition.Name != "Subscription" {
		return "", false
	}
	var b strings.Builder
	fn, root := helper("subscribeProduct")
	fmt.Fprintf(&b, "return %s[%s](ctx, %s, %q",
		fn, templates.CurrentImports.LookupType(f.TypeReference.GO), root, product)
	for _, a := range f.Args {
		b.WriteString(", ")
		b.WriteString(a.VarName)
	}
	b.WriteString(")")
	return b.String(), true
}
