// Package dynamic serves typed GraphQL fields for products that no compiled
// schema declares: the SQL products of a folder, read from the binary alone,
// with no code generation. New merges them into the compiled (gqlgen)
// schema and returns one graphql.ExecutableSchema, which gqlhttp.NewHandler (gateway/gqlhttp)
// serves like any other: gqlparser validates every document against the
// merged schema, and the same limits, auth, response cache, compression,
// APQ, batching, subscriptions and trusted documents apply.
//
// Each product of a Spec becomes a Query field and a Subscription field
// (titleList(authorId: Int!): [TitleListRow!] @product(name: "title_list")),
// each updater a typed mutation with a payload (addTitle(...):
// AddTitlePayload! @updater(name: "add_title")), carrying the same
// directives the productfield plugin reads, so graph.CheckBindings,
// graph.CheckUpdaters and the complexity limit see them as they see compiled
// fields. An operation that touches none of them (nor introspection) runs on
// the compiled schema alone, as if this package were not there; one that does
// runs its compiled fields on the compiled schema and the dynamic ones here.
//
// A dynamic field is projected from the product's cached JSON by the
// selection set, in one pass over the bytes, with no Go type in between:
// a hit costs what a compiled field's hit costs, or less (bench/README.md).
//
// A Schema is immutable: a reload builds a new one (gqlhttp.Handler.Prepare).
package dynamic

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/graph/directives"
	"github.com/kck-go/kck/primers"
)

// Spec is what the dynamic schema adds: products and updaters, with their
// GraphQL types (made by source/sqlproduct.DescribeAPI for SQL products).
type Spec struct {
	Products []Product
	Updaters []Updater
	// Prune leaves out the compiled schema's fields bound to products or
	// updaters the registry lacks, and the types only they reach: KCK's
	// own schema declares the demo's products, which a gateway of SQL
	// products alone (kck serve --sql-dir) does not serve.
	Prune bool
}

// Product is a product's field.
type Product struct {
	// Name is the product as registered; Field its GraphQL field, Args the
	// field's arguments, one per parameter, in order.
	Name, Field string
	Args        []Arg
	// Type is the field's type (a GraphQL type reference; the field itself
	// is always nullable, so that a failing product nulls its field only).
	// Object is the row type Type names, when it names one.
	Type        string
	Object      *Object
	Description string
	Pos         Pos
}

// Object is an object type: a row's.
type Object struct {
	Name   string
	Fields []Field
	Pos    Pos
}

// Field is a field of an Object: Key is the key of the product's JSON
// objects it reads (a column's name), Type its GraphQL type.
type Field struct {
	Name, Key, Type string
	Pos             Pos
}

// Arg is an argument: its name and GraphQL type.
type Arg struct{ Name, Type string }

// Updater is an updater's typed mutation.
type Updater struct {
	// Name is the updater as registered; Field the mutation; Args its input
	// fields, by name.
	Name, Field string
	Args        []Arg
	// Result is the row the updater returns, nil when none.
	Result *Object
	// Affects names the products whose keys it affects (kck:affects): the
	// payload has a typed field for each whose every parameter is a
	// non-null argument of the mutation, as @affected fields need.
	Affects     []string
	Description string
	Pos         Pos
}

// Pos is where a product or type is declared: a file and line.
type Pos struct {
	File string
	Line int
}

// Schema is the merged executable schema.
type Schema struct {
	compiled graphql.ExecutableSchema
	schema   *ast.Schema
	r        *graph.Resolver
	// roots are the fields resolved here, by "Type.field".
	roots map[string]*root
	// served are the dynamic fields, as "Query.titleList"; merged says
	// the schema is not the compiled one (fields added or pruned).
	served []string
	merged bool
	pruned []string
}

var _ graphql.ExecutableSchema = (*Schema)(nil)

// root is a root field served here.
type root struct {
	product string // Query and Subscription fields
	updater string // Mutation fields
	typ     *ast.Type
	// keys maps a type's fields to the JSON keys of this field's values,
	// where they differ (a column author_id read as authorId).
	keys    keyMap
	payload *payload // Mutation fields
}

// keyMap maps type -> field -> JSON key.
type keyMap map[string]map[string]string

func (k keyMap) key(typ, field string) string {
	if m := k[typ]; m != nil {
		if key, ok := m[field]; ok {
			return key
		}
	}
	return field
}

// payload is a typed mutation's payload type: its fields by name.
type payload struct {
	name     string
	result   string            // the @updateResult field, "" when none
	affected map[string]string // field -> product
	keys     map[string]keyMap // product -> its keys (affected fields)
}

// Served lists the dynamic fields ("Query.titleList", "Mutation.addTitle"),
// sorted as added.
func (s *Schema) Served() []string { return s.served }

// Schema is the merged schema: the compiled one and the dynamic fields.
func (s *Schema) Schema() *ast.Schema { return s.schema }

// Complexity is the compiled schema's for its fields; gqlgen's default (1
// plus the children) for the others, to which the gateway's limiter adds a
// product's cost (it finds the @product directive on the field).
func (s *Schema) Complexity(ctx context.Context, typeName, field string, child int, args map[string]any) (int, bool) {
	if _, ok := s.roots[typeName+"."+field]; ok {
		return 0, false
	}
	return s.compiled.Complexity(ctx, typeName, field, child, args)
}

// New merges spec into the compiled schema, served over r. Products the
// compiled schema binds already (a @product field names them) and updaters
// it has a typed mutation for are left to it. reg is the registry the
// schema is for (the products' parameters, for the payloads' @affected
// fields); at run time fields read r's.
//
// An error names the file and line of what does not fit: a field or type
// the compiled schema has already and cannot share (kck:type naming a type
// whose fields the columns do not give), a type gqlparser refuses.
func New(compiled graphql.ExecutableSchema, r *graph.Resolver, reg *primers.Registry, spec Spec) (*Schema, error) {
	base := compiled.Schema()
	s := &Schema{compiled: compiled, r: r, roots: map[string]*root{}}
	b, err := newBuilder(base)
	if err != nil {
		return nil, err
	}
	compiledProducts, compiledUpdaters := bound(base)
	if spec.Prune {
		s.pruned = b.pruneFields(reg)
	}
	var errs []error
	for _, p := range spec.Products {
		if compiledProducts[p.Name] {
			continue
		}
		if err := b.product(s, p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range spec.Updaters {
		if compiledUpdaters[u.Name] {
			continue
		}
		if err := b.updater(s, u, reg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := errors.Join(b.addMissing(), b.addDirectives()); err != nil {
		return nil, err
	}
	if len(s.pruned) > 0 {
		s.pruned = append(s.pruned, b.pruneTypes()...)
	}
	if len(s.roots) == 0 && len(s.pruned) == 0 {
		s.schema = base
		return s, nil
	}
	s.merged = true
	merged, gerr := validator.ValidateSchemaDocument(b.doc)
	if gerr != nil {
		return nil, fmt.Errorf("the SQL products' schema: %w", gerr)
	}
	b.restorePositions(merged)
	s.schema = merged
	for key, rt := range s.roots {
		typ, field, _ := strings.Cut(key, ".")
		def := merged.Types[typ]
		if def == nil || def.Fields.ForName(field) == nil {
			return nil, fmt.Errorf("dynamic: %s is not in the merged schema", key)
		}
		rt.typ = def.Fields.ForName(field).Type
	}
	return s, nil
}

// Compiled is the compiled schema s extends.
func (s *Schema) Compiled() graphql.ExecutableSchema { return s.compiled }

// Merged reports whether the schema served differs from the compiled one
// (dynamic fields added, or compiled ones pruned).
func (s *Schema) Merged() bool { return s.merged }

// Pruned lists the compiled fields left out (Spec.Prune).
func (s *Schema) Pruned() []string { return s.pruned }

// pruneFields removes from the document the root fields bound to products
// or updaters reg lacks, and returns them.
func (b *builder) pruneFields(reg *primers.Registry) []string {
	var removed []string
	roots := map[string]bool{}
	for _, op := range []ast.Operation{ast.Query, ast.Mutation, ast.Subscription} {
		roots[b.rootName(op)] = true
	}
	for _, d := range b.doc.Definitions {
		if !roots[d.Name] {
			continue
		}
		kept := d.Fields[:0:0]
		for _, f := range d.Fields {
			if pd := f.Directives.ForName(directives.Product); pd != nil && reg.Product(directiveName(pd)) == nil {
				removed = append(removed, d.Name+"."+f.Name)
				continue
			}
			if ud := f.Directives.ForName(directives.Updater); ud != nil {
				if _, err := reg.Updater(directiveName(ud)); err != nil {
					removed = append(removed, d.Name+"."+f.Name)
					continue
				}
			}
			kept = append(kept, f)
		}
		d.Fields = kept
	}
	return removed
}

// pruneTypes removes every object, interface, union and input type the
// roots, with their extensions, no longer reach, and returns them.
func (b *builder) pruneTypes() []string {
	var removed []string
	roots := map[string]bool{}
	for _, op := range []ast.Operation{ast.Query, ast.Mutation, ast.Subscription} {
		roots[b.rootName(op)] = true
	}
	defs := map[string]*ast.Definition{}
	for _, d := range b.doc.Definitions {
		defs[d.Name] = d
	}
	reach := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if reach[name] {
			return
		}
		reach[name] = true
		var fields ast.FieldList
		if d := defs[name]; d != nil {
			fields = append(fields, d.Fields...)
			for _, t := range d.Types {
				visit(t)
			}
			for _, t := range d.Interfaces {
				visit(t)
			}
		}
		for _, e := range b.doc.Extensions {
			if e.Name == name {
				fields = append(fields, e.Fields...)
			}
		}
		for _, f := range fields {
			visit(f.Type.Name())
			for _, a := range f.Arguments {
				visit(a.Type.Name())
			}
		}
	}
	for r := range roots {
		visit(r)
	}
	for _, d := range b.doc.Directives {
		for _, a := range d.Arguments {
			visit(a.Type.Name())
		}
	}
	kept := b.doc.Definitions[:0:0]
	for _, d := range b.doc.Definitions {
		switch {
		case reach[d.Name], d.BuiltIn, d.Kind == ast.Scalar, d.Kind == ast.Enum:
			kept = append(kept, d)
		default:
			removed = append(removed, d.Name)
		}
	}
	b.doc.Definitions = kept
	return removed
}

// bound returns the products and updaters the schema binds with @product
// and @updater.
func bound(schema *ast.Schema) (products, updaters map[string]bool) {
	products, updaters = map[string]bool{}, map[string]bool{}
	for _, t := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if t == nil {
			continue
		}
		for _, f := range t.Fields {
			if d := f.Directives.ForName(directives.Product); d != nil {
				products[directiveName(d)] = true
			}
			if d := f.Directives.ForName(directives.Updater); d != nil {
				updaters[directiveName(d)] = true
			}
		}
	}
	return products, updaters
}

func directiveName(d *ast.Directive) string {
	if a := d.Arguments.ForName("name"); a != nil && a.Value != nil {
		return a.Value.Raw
	}
	return ""
}

// builder makes the schema document: the compiled schema, printed and
// parsed again (so that validating the whole changes nothing the compiled
// schema's requests read), and the dynamic definitions, whose positions
// are the SQL files' lines.
type builder struct {
	base    *ast.Schema
	doc     *ast.SchemaDocument
	sources map[string]*ast.Source
	// defined are the types the spec defines, by name, and their fields'
	// keys of the product that defined them.
	defined map[string]*ast.Definition
	// ext are the root types' extensions (new fields of Query, Mutation,
	// Subscription), made on first use.
	ext map[string]*ast.Definition
	// fieldTypes are the types of the products' fields, for the payloads.
	fieldTypes map[string]string
	fieldKeys  map[string]keyMap
}

func newBuilder(base *ast.Schema) (*builder, error) {
	var text strings.Builder
	formatter.NewFormatter(&text).FormatSchema(base)
	doc, err := parser.ParseSchemas(validator.Prelude, &ast.Source{Name: "compiled schema", Input: text.String()})
	if err != nil {
		return nil, fmt.Errorf("dynamic: the compiled schema does not parse again: %w", err)
	}
	b := &builder{base: base, doc: doc, sources: map[string]*ast.Source{}, defined: map[string]*ast.Definition{},
		ext: map[string]*ast.Definition{}, fieldTypes: map[string]string{}, fieldKeys: map[string]keyMap{}}
	// The compiled products' fields, for typed mutations' payloads.
	if base.Query != nil {
		for _, f := range base.Query.Fields {
			if d := f.Directives.ForName(directives.Product); d != nil {
				b.fieldTypes[directiveName(d)] = f.Type.String()
			}
		}
	}
	return b, nil
}

// scalars are the scalars dynamic fields may need, which a schema of its
// own may lack.
var scalars = []struct{ name, desc string }{
	{"JSON", "Any JSON value."},
	{"Time", "An RFC 3339 timestamp."},
	{"Date", "A calendar date, YYYY-MM-DD (PostgreSQL's date)."},
	{"BigInt", "A signed 64-bit integer (PostgreSQL's int8), as a string of digits: a JavaScript number holds 53 bits."},
}

// addMissing adds what the dynamic definitions name and the compiled
// schema lacks: the Product type (payloads' products) and the scalars.
func (b *builder) addMissing() error {
	used := map[string]bool{}
	visit := func(fs ast.FieldList) {
		for _, f := range fs {
			used[f.Type.Name()] = true
			for _, a := range f.Arguments {
				used[a.Type.Name()] = true
			}
		}
	}
	for _, d := range b.defined {
		visit(d.Fields)
	}
	for _, d := range b.ext {
		visit(d.Fields)
	}
	if used["Product"] && b.base.Types["Product"] == nil {
		pd, err := parser.ParseSchema(&ast.Source{Name: "kck", Input: productType})
		if err != nil {
			return err
		}
		b.doc.Definitions = append(b.doc.Definitions, pd.Definitions...)
		used["Time"], used["JSON"] = true, true
	}
	for _, sc := range scalars {
		if used[sc.name] && b.base.Types[sc.name] == nil {
			b.doc.Definitions = append(b.doc.Definitions, &ast.Definition{Kind: ast.Scalar, Name: sc.name, Description: sc.desc, Position: b.pos(Pos{File: "kck"})})
		}
	}
	return nil
}

// addDirectives defines the directives dynamic fields carry, where the
// compiled schema does not.
func (b *builder) addDirectives() error {
	for _, d := range []string{directives.Product, directives.Updater, directives.Affected, directives.UpdateResult} {
		if b.base.Directives[d] == nil {
			dd, err := parser.ParseSchema(&ast.Source{Name: "kck", Input: directiveSDL[d]})
			if err != nil {
				return err
			}
			b.doc.Directives = append(b.doc.Directives, dd.Directives...)
		}
	}
	return nil
}

// productType is KCK's Product type, for a schema of its own that lacks it.
const productType = `"A product value with its freshness. Identity: key."
type Product {
  key: String!
  "Version of this value: a decimal string (64 bits); higher is newer."
  version: String!
  computedAt: Time!
  "True when the value is past its soft expiry or kept after a failed refresh."
  stale: Boolean!
  value: JSON!
}`

var directiveSDL = map[string]string{
	directives.Product:      `directive @product(name: String!) on FIELD_DEFINITION`,
	directives.Updater:      `directive @updater(name: String!) on FIELD_DEFINITION`,
	directives.Affected:     `directive @affected(name: String!) on FIELD_DEFINITION`,
	directives.UpdateResult: `directive @updateResult on FIELD_DEFINITION`,
}

// pos is p as a gqlparser position: errors then name the file and line.
func (b *builder) pos(p Pos) *ast.Position {
	src := b.sources[p.File]
	if src == nil {
		src = &ast.Source{Name: p.File}
		b.sources[p.File] = src
	}
	return &ast.Position{Src: src, Line: p.Line}
}

func posError(p Pos, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.Line > 0 {
		return fmt.Errorf("%s:%d: %s", p.File, p.Line, msg)
	}
	return fmt.Errorf("%s: %s", p.File, msg)
}

// rootExt returns the extension of root type name (Query, Mutation,
// Subscription), adding the type when the compiled schema has none.
func (b *builder) rootExt(name string) *ast.Definition {
	if d := b.ext[name]; d != nil {
		return d
	}
	d := &ast.Definition{Kind: ast.Object, Name: name, Position: b.pos(Pos{File: "kck"})}
	b.ext[name] = d
	if b.base.Types[name] == nil {
		b.doc.Definitions = append(b.doc.Definitions, d)
	} else {
		b.doc.Extensions = append(b.doc.Extensions, d)
	}
	return d
}

// rootName is the name of the schema's root type of op, or op's usual name.
func (b *builder) rootName(op ast.Operation) string {
	var d *ast.Definition
	switch op {
	case ast.Query:
		d = b.base.Query
	case ast.Mutation:
		d = b.base.Mutation
	case ast.Subscription:
		d = b.base.Subscription
	}
	if d != nil {
		return d.Name
	}
	return map[ast.Operation]string{ast.Query: "Query", ast.Mutation: "Mutation", ast.Subscription: "Subscription"}[op]
}

// taken reports whether the compiled schema (pruned) has field on root
// type name.
func (b *builder) taken(name, field string) bool {
	for _, d := range b.doc.Definitions {
		if d.Name == name {
			return d.Fields.ForName(field) != nil
		}
	}
	return false
}

func (b *builder) product(s *Schema, p Product) error {
	query, sub := b.rootName(ast.Query), b.rootName(ast.Subscription)
	for _, t := range []string{query, sub} {
		if b.taken(t, p.Field) {
			return posError(p.Pos, "%s.%s is in the compiled schema already, bound to no product %s: rename the product", t, p.Field, p.Name)
		}
	}
	typ, err := parseType(p.Type)
	if err != nil {
		return posError(p.Pos, "product %s: %v", p.Name, err)
	}
	typ = nullable(typ)
	keys := keyMap{}
	if p.Object != nil {
		if err := b.object(p.Object, keys); err != nil {
			return err
		}
	}
	args, err := b.args(p.Args, p.Pos)
	if err != nil {
		return err
	}
	desc := p.Description
	for _, t := range []string{query, sub} {
		f := &ast.FieldDefinition{
			Name: p.Field, Arguments: args, Type: typ, Description: desc, Position: b.pos(p.Pos),
			Directives: ast.DirectiveList{nameDirective(directives.Product, p.Name, b.pos(p.Pos))},
		}
		b.rootExt(t).Fields = append(b.rootExt(t).Fields, f)
		s.roots[t+"."+p.Field] = &root{product: p.Name, keys: keys}
		s.served = append(s.served, t+"."+p.Field)
	}
	b.fieldTypes[p.Name] = typ.String()
	b.fieldKeys[p.Name] = keys
	return nil
}

func nameDirective(name, value string, pos *ast.Position) *ast.Directive {
	return &ast.Directive{Name: name, Position: pos, Arguments: ast.ArgumentList{{
		Name: "name", Position: pos, Value: &ast.Value{Kind: ast.StringValue, Raw: value, Position: pos},
	}}}
}

func (b *builder) args(args []Arg, p Pos) (ast.ArgumentDefinitionList, error) {
	var out ast.ArgumentDefinitionList
	for _, a := range args {
		t, err := parseType(a.Type)
		if err != nil {
			return nil, posError(p, "argument %s: %v", a.Name, err)
		}
		out = append(out, &ast.ArgumentDefinition{Name: a.Name, Type: t, Position: b.pos(p)})
	}
	return out, nil
}

// object defines o, or checks that the type of its name, compiled or
// defined by another product, has only fields o gives with a type that
// fits; keys gets the fields' JSON keys.
func (b *builder) object(o *Object, keys keyMap) error {
	m := map[string]string{}
	for _, f := range o.Fields {
		if f.Key != f.Name {
			m[f.Name] = f.Key
		}
	}
	if len(m) > 0 {
		keys[o.Name] = m
	}
	existing := b.base.Types[o.Name]
	if existing == nil {
		existing = b.defined[o.Name]
	}
	if existing != nil {
		if existing.Kind != ast.Object {
			return posError(o.Pos, "type %s is a %s in the schema already; kck:type names an object type", o.Name, strings.ToLower(string(existing.Kind)))
		}
		for _, ef := range existing.Fields {
			if strings.HasPrefix(ef.Name, "__") {
				continue
			}
			var got *Field
			for i := range o.Fields {
				if o.Fields[i].Name == ef.Name {
					got = &o.Fields[i]
				}
			}
			if got == nil {
				return posError(o.Pos, "type %s (in the schema already) has a field %s, which no column gives: add it to the statement, or name another type", o.Name, ef.Name)
			}
			t, err := parseType(got.Type)
			if err != nil {
				return posError(got.Pos, "%s.%s: %v", o.Name, got.Name, err)
			}
			if !serves(t, ef.Type) {
				return posError(o.Pos, "type %s (in the schema already): %s is %s but column %s is %s", o.Name, ef.Name, ef.Type.String(), got.Key, got.Type)
			}
		}
		return nil
	}
	def := &ast.Definition{Kind: ast.Object, Name: o.Name, Position: b.pos(o.Pos)}
	for _, f := range o.Fields {
		t, err := parseType(f.Type)
		if err != nil {
			return posError(f.Pos, "%s.%s: %v", o.Name, f.Name, err)
		}
		fp := f.Pos
		if fp.Line == 0 {
			fp = o.Pos
		}
		def.Fields = append(def.Fields, &ast.FieldDefinition{Name: f.Name, Type: t, Position: b.pos(fp)})
	}
	b.defined[o.Name] = def
	b.doc.Definitions = append(b.doc.Definitions, def)
	return nil
}

// serves reports whether a value of type got can be served as want: the
// same types, where want may be nullable and got not.
func serves(got, want *ast.Type) bool {
	if want.NonNull && !got.NonNull {
		return false
	}
	if (want.Elem == nil) != (got.Elem == nil) {
		return false
	}
	if want.Elem != nil {
		return serves(got.Elem, want.Elem)
	}
	return got.NamedType == want.NamedType
}

func (b *builder) updater(s *Schema, u Updater, reg *primers.Registry) error {
	mut := b.rootName(ast.Mutation)
	if b.taken(mut, u.Field) {
		return posError(u.Pos, "%s.%s is in the compiled schema already, bound to no updater %s: rename the updater", mut, u.Field, u.Name)
	}
	name := strings.ToUpper(u.Field[:1]) + u.Field[1:] + "Payload"
	if b.base.Types[name] != nil || b.defined[name] != nil {
		return posError(u.Pos, "type %s, the payload of %s, is in the schema already: rename the updater", name, u.Field)
	}
	args, err := b.args(u.Args, u.Pos)
	if err != nil {
		return err
	}
	pl := &payload{name: name, affected: map[string]string{}, keys: map[string]keyMap{}}
	rt := &root{updater: u.Name, payload: pl, keys: keyMap{}}
	def := &ast.Definition{Kind: ast.Object, Name: name, Position: b.pos(u.Pos),
		Description: "What " + u.Field + " wrote and the products it affected, fresh. No identity of its own (not normalised)."}
	if u.Result != nil {
		if err := b.object(u.Result, rt.keys); err != nil {
			return err
		}
		pl.result = "result"
		def.Fields = append(def.Fields, &ast.FieldDefinition{
			Name: "result", Type: ast.NamedType(u.Result.Name, nil), Position: b.pos(u.Pos),
			Description: "The row the updater returned.",
			Directives:  ast.DirectiveList{{Name: directives.UpdateResult, Position: b.pos(u.Pos)}},
		})
	}
	seen := map[string]bool{}
	for _, prod := range u.Affects {
		field := camel(prod)
		if seen[prod] || field == "result" || field == "products" {
			continue
		}
		seen[prod] = true
		typ, ok := b.fieldTypes[prod]
		p := reg.Product(prod)
		if !ok || p == nil || !keyedByArgs(p, args) {
			continue // in products only: its key is not the mutation's arguments
		}
		t, err := parseType(typ)
		if err != nil {
			return posError(u.Pos, "%s: %v", prod, err)
		}
		pl.affected[field] = prod
		pl.keys[prod] = b.fieldKeys[prod]
		def.Fields = append(def.Fields, &ast.FieldDefinition{
			Name: field, Type: nullable(t), Position: b.pos(u.Pos),
			Description: "Product " + prod + " as the write left it (read-your-writes).",
			Directives:  ast.DirectiveList{nameDirective(directives.Affected, prod, b.pos(u.Pos))},
		})
	}
	def.Fields = append(def.Fields, &ast.FieldDefinition{
		Name: "products", Type: ast.NonNullListType(ast.NonNullNamedType("Product", nil), nil), Position: b.pos(u.Pos),
		Description: "The freshness (and JSON value) of every product the updater affected.",
	})
	b.defined[name] = def
	b.doc.Definitions = append(b.doc.Definitions, def)
	b.rootExt(mut).Fields = append(b.rootExt(mut).Fields, &ast.FieldDefinition{
		Name: u.Field, Arguments: args, Type: ast.NonNullNamedType(name, nil), Description: u.Description, Position: b.pos(u.Pos),
		Directives: ast.DirectiveList{nameDirective(directives.Updater, u.Name, b.pos(u.Pos))},
	})
	s.roots[mut+"."+u.Field] = rt
	s.served = append(s.served, mut+"."+u.Field)
	return nil
}

// keyedByArgs reports whether every parameter of p is a non-null argument
// of the mutation of its type (authorId for author_id), as graph's
// CheckUpdaters wants of an @affected field.
func keyedByArgs(p *primers.Product, args ast.ArgumentDefinitionList) bool {
	for _, prm := range p.Params {
		found := false
		for _, a := range args {
			if norm(a.Name) == norm(prm.Name) && a.Type.NonNull && a.Type.Elem == nil && a.Type.NamedType == kindType(prm.Kind) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func kindType(k primers.Kind) string {
	return map[primers.Kind]string{primers.Int: "Int", primers.Float: "Float", primers.String: "String",
		primers.Bool: "Boolean", primers.Date: "Date", primers.Timestamp: "Time"}[k]
}

func norm(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// camel is a product's field name: title_list is titleList.
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// restorePositions gives the compiled schema's types, fields and
// directives their own positions back (schema.graphqls:12), which printing
// and parsing it again replaced.
func (b *builder) restorePositions(merged *ast.Schema) {
	for name, def := range b.base.Types {
		m := merged.Types[name]
		if m == nil || def.BuiltIn {
			continue
		}
		m.Position = def.Position
		for _, f := range def.Fields {
			if mf := m.Fields.ForName(f.Name); mf != nil && f.Position != nil {
				mf.Position = f.Position
			}
		}
	}
	for name, d := range b.base.Directives {
		if m := merged.Directives[name]; m != nil && d.Position != nil {
			m.Position = d.Position
		}
	}
}

// nullable is t without its outer non-null.
func nullable(t *ast.Type) *ast.Type {
	c := *t
	c.NonNull = false
	return &c
}

// parseType parses a GraphQL type reference: Name, Name!, [T], [T]!.
func parseType(s string) (*ast.Type, error) {
	s = strings.TrimSpace(s)
	nonNull := strings.HasSuffix(s, "!")
	t := strings.TrimSpace(strings.TrimSuffix(s, "!"))
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		elem, err := parseType(t[1 : len(t)-1])
		if err != nil {
			return nil, err
		}
		return &ast.Type{Elem: elem, NonNull: nonNull}, nil
	}
	if t == "" || strings.ContainsAny(t, "[]! ") {
		return nil, fmt.Errorf("%q is not a GraphQL type", s)
	}
	return &ast.Type{NamedType: t, NonNull: nonNull}, nil
}
