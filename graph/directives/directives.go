// Package directives names the schema directives that bind GraphQL fields
// to KCK: the code generator (graph/productfield) writes resolvers for them,
// and the server reads them from the schema at start (bindings, limits,
// typed mutations, the SQL products' fields). It imports nothing, so that
// the server binary does not link gqlgen's code generator for four names.
package directives

const (
	// Product binds a field to a product: @product(name: "title_list").
	Product = "product"
	// Updater makes a mutation run an updater: @updater(name: "add_title").
	Updater = "updater"
	// Affected is a payload field holding a product as the write left it.
	Affected = "affected"
	// UpdateResult is a payload field holding what the updater returned.
	UpdateResult = "updateResult"
)
