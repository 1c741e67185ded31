package dynamic

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Projection: a product's JSON value written as the GraphQL response of a
// field, by the field's type and selection set, in one pass over the
// value's bytes. What the type says is checked as it is written (an Int
// is a whole number of 32 bits, a non-null field is not null, an object is
// an object); what does not fit is a field error (INTERNAL: a product's
// value that does not fit its own type is the server's fault) and nulls the
// nearest nullable field, as GraphQL's null propagation says.

// projector writes one field's value. Not safe for concurrent use.
type projector struct {
	ctx    context.Context
	oc     *graphql.OperationContext
	schema *ast.Schema
	keys   keyMap
	what   string   // "product title_list/42", for messages
	base   ast.Path // the field's, from the operation's root
	// path is the way from the field to the value being written; made an
	// ast.Path only for an error (a PathName in an interface allocates).
	path []step
	// mem is a stack of objects' members, reused across rows.
	mem []member
	// fields memoizes CollectFields by selection set and type: the rows
	// of a list share them.
	fields []collected
}

// step is a name, or an index when name is "".
type step struct {
	name string
	idx  int
}

type collected struct {
	sel    *ast.Selection
	n      int
	typ    string
	fields []graphql.CollectedField
}

var projectors = sync.Pool{New: func() any { return &projector{} }}

// project writes raw (a product's value, or part of one) as type t with
// selections sel, for the field at path, and returns the bytes; nil when
// it nulls a non-null t (the caller propagates).
func project(ctx context.Context, oc *graphql.OperationContext, schema *ast.Schema, keys keyMap, what string, path ast.Path, raw []byte, t *ast.Type, sel ast.SelectionSet, out []byte) ([]byte, bool) {
	p := projectors.Get().(*projector)
	p.ctx, p.oc, p.schema, p.keys, p.what, p.base = ctx, oc, schema, keys, what, path
	out, ok := p.value(out, raw, t, sel)
	p.ctx, p.oc, p.schema, p.keys, p.base = nil, nil, nil, nil, nil
	p.mem, p.fields, p.path = p.mem[:0], p.fields[:0], p.path[:0]
	if cap(p.mem) <= 1024 && cap(p.path) <= 64 {
		projectors.Put(p)
	}
	return out, ok
}

// fail reports a field error at the current path.
func (p *projector) fail(format string, args ...any) {
	path := append(ast.Path(nil), p.base...)
	for _, s := range p.path {
		if s.name == "" {
			path = append(path, ast.PathIndex(s.idx))
		} else {
			path = append(path, ast.PathName(s.name))
		}
	}
	err := fmt.Errorf("%s: %s: %s", p.what, path.String(), fmt.Sprintf(format, args...))
	graphql.AddError(p.ctx, &gqlerror.Error{Err: err, Message: err.Error(), Path: path})
}

// null writes null for type t; false when t is non-null (an error is
// reported unless one was for this value already).
func (p *projector) null(out []byte, t *ast.Type, reported bool) ([]byte, bool) {
	if t.NonNull && !reported {
		p.fail("must not be null")
	}
	return append(out, "null"...), !t.NonNull
}

func (p *projector) value(out []byte, raw []byte, t *ast.Type, sel ast.SelectionSet) ([]byte, bool) {
	kind := jsonKind(raw)
	if kind == 'n' {
		return p.null(out, t, false)
	}
	if t.Elem != nil {
		return p.list(out, raw, kind, t, sel)
	}
	def := p.schema.Types[t.NamedType]
	if def == nil {
		p.fail("type %s is not in the schema", t.NamedType)
		return p.null(out, t, true)
	}
	switch def.Kind {
	case ast.Object:
		return p.object(out, raw, kind, t, def, sel)
	case ast.Scalar, ast.Enum:
		if o, ok := p.scalar(out, raw, kind, def); ok {
			return o, true
		}
		return p.null(out, t, true)
	}
	p.fail("a %s is not served from a product's JSON", def.Kind)
	return p.null(out, t, true)
}

func (p *projector) list(out []byte, raw []byte, kind byte, t *ast.Type, sel ast.SelectionSet) ([]byte, bool) {
	if kind != '[' {
		p.fail("the value is not a list")
		return p.null(out, t, true)
	}
	start := len(out)
	out = append(out, '[')
	i := skipSpace(raw, 1)
	if i < len(raw) && raw[i] == ']' {
		return append(out, ']'), true
	}
	depth := len(p.path)
	for n := 0; ; n++ {
		end, err := valueEnd(raw, i)
		if err != nil {
			p.fail("the value is not valid JSON")
			return p.null(out[:start], t, true)
		}
		if n > 0 {
			out = append(out, ',')
		}
		p.path = append(p.path[:depth], step{idx: n})
		var ok bool
		if out, ok = p.value(out, raw[i:end], t.Elem, sel); !ok {
			// A non-null element is null: the list is.
			p.path = p.path[:depth]
			return p.null(out[:start], t, true)
		}
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
			continue
		}
		break
	}
	p.path = p.path[:depth]
	return append(out, ']'), true
}

func (p *projector) collect(sel ast.SelectionSet, typ string) []graphql.CollectedField {
	var first *ast.Selection
	if len(sel) > 0 {
		first = &sel[0]
	}
	for _, c := range p.fields {
		if c.sel == first && c.n == len(sel) && c.typ == typ {
			return c.fields
		}
	}
	f := graphql.CollectFields(p.oc, sel, []string{typ})
	p.fields = append(p.fields, collected{sel: first, n: len(sel), typ: typ, fields: f})
	return f
}

func (p *projector) object(out []byte, raw []byte, kind byte, t *ast.Type, def *ast.Definition, sel ast.SelectionSet) ([]byte, bool) {
	if kind != '{' {
		p.fail("the value is not an object")
		return p.null(out, t, true)
	}
	base := len(p.mem)
	mem, err := appendMembers(p.mem, raw)
	if err != nil {
		p.fail("the value is not valid JSON")
		return p.null(out, t, true)
	}
	p.mem = mem
	defer func() { p.mem = p.mem[:base] }()
	start := len(out)
	out = append(out, '{')
	depth := len(p.path)
	for i, f := range p.collect(sel, def.Name) {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, f.Alias)
		out = append(out, ':')
		if f.Name == "__typename" {
			out = strconv.AppendQuote(out, def.Name)
			continue
		}
		fd := def.Fields.ForName(f.Name)
		if fd == nil {
			p.fail("%s has no field %s", def.Name, f.Name)
			return p.null(out[:start], t, true)
		}
		key := p.keys.key(def.Name, f.Name)
		var val []byte
		for _, m := range p.mem[base:] {
			if string(m.key) == key {
				val = m.val
				break
			}
		}
		p.path = append(p.path[:depth], step{name: f.Alias})
		var ok bool
		if out, ok = p.value(out, val, fd.Type, f.Selections); !ok {
			p.path = p.path[:depth]
			return p.null(out[:start], t, true)
		}
	}
	p.path = p.path[:depth]
	return append(out, '}'), true
}

// scalar writes a leaf; false (with an error reported) when raw is not
// what the type takes.
func (p *projector) scalar(out []byte, raw []byte, kind byte, def *ast.Definition) ([]byte, bool) {
	bad := func(want string) ([]byte, bool) {
		p.fail("the value %s is not %s", describe(raw, kind), want)
		return out, false
	}
	switch def.Name {
	case "Int":
		if kind != 0 || !isInteger(raw) {
			return bad("an Int")
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
			return bad("an Int (32 bits): declare the field BigInt (kck:field)")
		}
		return append(out, raw...), true
	case "Float":
		if kind != 0 || !isNumber(raw) {
			return bad("a Float")
		}
		return append(out, raw...), true
	case "Boolean":
		if kind != 't' && kind != 'f' {
			return bad("a Boolean")
		}
		return append(out, raw...), true
	case "String", "ID":
		switch {
		case kind == '"':
			return append(out, raw...), true
		case kind == 0 && isNumber(raw):
			// A number served as a string: its digits (a numeric column
			// kept exact, an id).
			out = append(out, '"')
			out = append(out, raw...)
			return append(out, '"'), true
		}
		return bad("a " + def.Name)
	case "BigInt":
		switch {
		case kind == 0 && isInteger(raw):
			out = append(out, '"')
			out = append(out, raw...)
			return append(out, '"'), true
		case kind == '"':
			return append(out, raw...), true
		}
		return bad("a BigInt")
	case "JSON":
		return append(out, raw...), true
	case "Date", "Time":
		if kind != '"' {
			return bad("a " + def.Name)
		}
		return append(out, raw...), true
	}
	if def.Kind == ast.Enum {
		if kind != '"' {
			return bad("a " + def.Name)
		}
		return append(out, raw...), true
	}
	// A custom scalar of the application's schema: its JSON as it is.
	return append(out, raw...), true
}

// describe names a value's kind for a message (never its content: it may
// be someone's data).
func describe(raw []byte, kind byte) string {
	switch kind {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	}
	if isInteger(raw) {
		return "a whole number"
	}
	return "a number"
}
