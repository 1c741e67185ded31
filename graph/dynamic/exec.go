package dynamic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/primers"
)

// Exec runs an operation. One that touches no dynamic field and no
// introspection is the compiled schema's alone. Otherwise the root fields
// are collected (fragments, @skip and @include as gqlgen does), the
// dynamic ones resolved here, the compiled ones by the compiled schema on
// an operation holding only them, and the response object assembled in the
// document's order: queries' fields concurrently, mutations' in turn.
func (s *Schema) Exec(ctx context.Context) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if !s.merged || !s.touches(oc) {
		return s.compiled.Exec(ctx)
	}
	switch oc.Operation.Operation {
	case ast.Query, ast.Mutation:
		done := false
		return func(ctx context.Context) *graphql.Response {
			if done {
				return nil
			}
			done = true
			return &graphql.Response{Data: s.root(ctx, oc)}
		}
	case ast.Subscription:
		return s.subscribe(ctx, oc)
	}
	return graphql.OneShot(graphql.ErrorResponse(ctx, "unsupported GraphQL operation"))
}

// rootType is the name of the root type of oc's operation.
func (s *Schema) rootType(op ast.Operation) string {
	var d *ast.Definition
	switch op {
	case ast.Query:
		d = s.schema.Query
	case ast.Mutation:
		d = s.schema.Mutation
	case ast.Subscription:
		d = s.schema.Subscription
	}
	if d == nil {
		return ""
	}
	return d.Name
}

// touches reports whether the operation selects a dynamic root field or
// introspects the schema (which only the merged schema can answer).
func (s *Schema) touches(oc *graphql.OperationContext) bool {
	typ := s.rootType(oc.Operation.Operation)
	var walk func(ss ast.SelectionSet, depth int) bool
	walk = func(ss ast.SelectionSet, depth int) bool {
		if depth > 64 {
			return false // the validator refuses fragment cycles
		}
		for _, sel := range ss {
			switch x := sel.(type) {
			case *ast.Field:
				if x.Name == "__schema" || x.Name == "__type" {
					return true
				}
				if _, ok := s.roots[typ+"."+x.Name]; ok {
					return true
				}
			case *ast.InlineFragment:
				if walk(x.SelectionSet, depth+1) {
					return true
				}
			case *ast.FragmentSpread:
				if f := oc.Doc.Fragments.ForName(x.Name); f != nil && walk(f.SelectionSet, depth+1) {
					return true
				}
			}
		}
		return false
	}
	return walk(oc.Operation.SelectionSet, 0)
}

// root resolves a query's or mutation's root fields and returns the data.
func (s *Schema) root(ctx context.Context, oc *graphql.OperationContext) []byte {
	typ := s.rootType(oc.Operation.Operation)
	mutation := oc.Operation.Operation == ast.Mutation
	fields := graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{typ})
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: typ})
	out := graphql.NewFieldSet(fields)
	var compiled []int
	for i, f := range fields {
		inner := graphql.WithRootFieldContext(ctx, &graphql.RootFieldContext{Object: f.Name, Field: f})
		rt := s.roots[typ+"."+f.Name]
		switch {
		case f.Name == "__typename":
			out.Values[i] = graphql.MarshalString(typ)
		case f.Name == "__schema" || f.Name == "__type":
			out.Values[i] = s.introspect(inner, oc, f)
		case rt == nil:
			if mutation {
				// In turn: a mutation's fields run one after another.
				out.Values[i] = s.compiledFields(ctx, oc, fields, []int{i})[0]
				if out.Values[i] == graphql.Null {
					out.Invalids++
				}
				continue
			}
			compiled = append(compiled, i)
		case mutation:
			out.Values[i] = oc.RootResolverMiddleware(inner, func(ctx context.Context) graphql.Marshaler {
				return s.mutationField(ctx, oc, f, rt)
			})
			if out.Values[i] == graphql.Null {
				out.Invalids++
			}
		default:
			out.Concurrently(i, func(context.Context) graphql.Marshaler {
				return oc.RootResolverMiddleware(inner, func(ctx context.Context) graphql.Marshaler {
					return s.productField(ctx, oc, typ, f, rt)
				})
			})
		}
	}
	var compiledVals []graphql.Marshaler
	var wg sync.WaitGroup
	if len(compiled) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			compiledVals = s.compiledFields(ctx, oc, fields, compiled)
		}()
	}
	out.Dispatch(ctx)
	wg.Wait()
	for j, i := range compiled {
		out.Values[i] = compiledVals[j]
		if compiledVals[j] == graphql.Null {
			out.Invalids++ // the compiled data was null: a non-null field failed
		}
	}
	if out.Invalids > 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	out.MarshalGQL(&buf)
	return buf.Bytes()
}

// compiledFields runs fields[idx] on the compiled schema, as an operation
// of those fields alone, and returns their values; each is graphql.Null
// when the compiled data was null (a non-null field of it failed).
func (s *Schema) compiledFields(ctx context.Context, oc *graphql.OperationContext, fields []graphql.CollectedField, idx []int) []graphql.Marshaler {
	vals := make([]graphql.Marshaler, len(idx))
	sel := make(ast.SelectionSet, len(idx))
	for j, i := range idx {
		f := *fields[i].Field
		f.SelectionSet = fields[i].Selections // merged from every occurrence
		sel[j] = &f
	}
	op := *oc.Operation
	op.SelectionSet = sel
	sub := &graphql.OperationContext{
		RawQuery: oc.RawQuery, Variables: oc.Variables, OperationName: oc.OperationName, Doc: oc.Doc,
		Extensions: oc.Extensions, Headers: oc.Headers, Operation: &op, DisableIntrospection: oc.DisableIntrospection,
		RecoverFunc: oc.RecoverFunc, ResolverMiddleware: oc.ResolverMiddleware, RootResolverMiddleware: oc.RootResolverMiddleware,
		Stats: oc.Stats,
	}
	cctx := graphql.WithOperationContext(ctx, sub)
	var data []byte
	if resp := s.compiled.Exec(cctx)(cctx); resp != nil {
		data = resp.Data
	}
	var mem []member
	if jsonKind(data) == '{' {
		mem, _ = appendMembers(nil, data)
	}
	for j, i := range idx {
		vals[j] = graphql.Null
		for _, m := range mem {
			if string(m.key) == fields[i].Alias {
				vals[j] = raw(m.val)
			}
		}
	}
	return vals
}

// raw is JSON written as it is.
type raw []byte

func (r raw) MarshalGQL(w io.Writer) { _, _ = w.Write(r) }

// productField is a dynamic Query field: the key from the arguments (and
// a per-user product's claims), the caller's access checked, the product
// read through the cache (its freshness noted for extensions.kck and the
// response cache), projected by the selection set.
func (s *Schema) productField(ctx context.Context, oc *graphql.OperationContext, typ string, f graphql.CollectedField, rt *root) graphql.Marshaler {
	return graphql.ResolveField(ctx, oc, f,
		func(ctx context.Context, f graphql.CollectedField) (*graphql.FieldContext, error) {
			return s.fieldContext(ctx, oc, typ, f)
		},
		func(ctx context.Context) (any, error) {
			args, err := s.keyArgs(rt.product, graphql.GetFieldContext(ctx))
			if err != nil {
				return nil, err
			}
			k, err := s.r.Auth.FieldKey(ctx, rt.product, args...)
			if err != nil {
				return nil, err
			}
			res, err := s.r.Cache.GetKey(ctx, k) // recorded by the cache
			if err != nil {
				return nil, err
			}
			return res, nil
		},
		nil,
		func(ctx context.Context, sel ast.SelectionSet, res cache.Result) graphql.Marshaler {
			return s.projected(ctx, oc, rt.keys, "product "+res.Key, res.Value, rt.typ, sel)
		},
		true, false)
}

// projected writes v by type t and selections sel as the current field's
// value.
func (s *Schema) projected(ctx context.Context, oc *graphql.OperationContext, keys keyMap, what string, v []byte, t *ast.Type, sel ast.SelectionSet) graphql.Marshaler {
	out, _ := project(ctx, oc, s.schema, keys, what, graphql.GetPath(ctx), v, t, sel, nil)
	return raw(out)
}

// fieldContext is a root field's, with its arguments coerced.
func (s *Schema) fieldContext(ctx context.Context, oc *graphql.OperationContext, typ string, f graphql.CollectedField) (*graphql.FieldContext, error) {
	fc := &graphql.FieldContext{Object: typ, Field: f, IsMethod: true, IsResolver: true}
	ctx = graphql.WithFieldContext(ctx, fc)
	args, err := coerceArgs(f, oc.Variables)
	if err != nil {
		oc.Error(ctx, err)
		return fc, err
	}
	fc.Args = args
	return fc, nil
}

// keyArgs are a product's key arguments, in its parameters' order, from
// the field's arguments (authorId for author_id).
func (s *Schema) keyArgs(product string, fc *graphql.FieldContext) ([]any, error) {
	p := s.r.Cache.Registry().Product(product)
	if p == nil {
		return nil, fmt.Errorf("%w: no product named %s (its file was removed)", primers.ErrUnknownProduct, product)
	}
	args := make([]any, len(p.Params))
	for i, prm := range p.Params {
		for _, a := range fc.Field.Definition.Arguments {
			if norm(a.Name) == norm(prm.Name) {
				args[i] = fc.Args[a.Name]
			}
		}
	}
	return args, nil
}

// coerceArgs turns a field's arguments into the Go values a key takes:
// int64, float64, string, bool, time.Time (Date, Time), nil (absent).
func coerceArgs(f graphql.CollectedField, vars map[string]any) (map[string]any, error) {
	if f.Definition == nil || len(f.Definition.Arguments) == 0 {
		return nil, nil
	}
	in := f.ArgumentMap(vars)
	out := make(map[string]any, len(f.Definition.Arguments))
	for _, a := range f.Definition.Arguments {
		v, err := coerce(in[a.Name], a.Type)
		if err != nil {
			return nil, gqlerror.Errorf("argument %s: %v", a.Name, err)
		}
		out[a.Name] = v
	}
	return out, nil
}

func coerce(v any, t *ast.Type) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.NamedType {
	case "Int":
		n, err := graphql.UnmarshalInt64(v)
		if err != nil {
			return nil, err
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("%d is not an Int (32 bits)", n)
		}
		return n, nil
	case "BigInt":
		switch x := v.(type) {
		case string:
			return strconv.ParseInt(x, 10, 64)
		}
		return graphql.UnmarshalInt64(v)
	case "Float":
		return graphql.UnmarshalFloat(v)
	case "String", "ID":
		return graphql.UnmarshalString(v)
	case "Boolean":
		return graphql.UnmarshalBoolean(v)
	case "Time":
		return graphql.UnmarshalTime(v)
	case "Date":
		s, err := graphql.UnmarshalString(v)
		if err != nil {
			return nil, err
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
		}
		return d, nil
	}
	return v, nil
}

// mutationField is a dynamic typed mutation: the arguments become the
// updater's JSON input, by name, and from there it is update(name, input):
// the caller's access checked first, the affected products refreshed
// before the answer.
func (s *Schema) mutationField(ctx context.Context, oc *graphql.OperationContext, f graphql.CollectedField, rt *root) graphql.Marshaler {
	typ := s.rootType(ast.Mutation)
	return graphql.ResolveField(ctx, oc, f,
		func(ctx context.Context, f graphql.CollectedField) (*graphql.FieldContext, error) {
			return s.fieldContext(ctx, oc, typ, f)
		},
		func(ctx context.Context) (any, error) {
			fc := graphql.GetFieldContext(ctx)
			input, err := updaterInput(fc)
			if err != nil {
				return nil, err
			}
			if err := s.r.Auth.Update(ctx, rt.updater, input); err != nil {
				return nil, err
			}
			out, err := s.r.Cache.Update(ctx, rt.updater, input)
			if err != nil {
				return nil, err
			}
			return &outcome{args: fc.Args, out: out}, nil
		},
		nil,
		func(ctx context.Context, sel ast.SelectionSet, o *outcome) graphql.Marshaler {
			return s.payload(ctx, oc, rt, o, sel)
		},
		true, true)
}

// outcome is a typed mutation's: its arguments and the update's outcome.
type outcome struct {
	args map[string]any
	out  cache.UpdateOutcome
}

// updaterInput is the mutation's arguments as the updater's JSON input, in
// their order; an argument left out is left out.
func updaterInput(fc *graphql.FieldContext) (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, a := range fc.Field.Definition.Arguments {
		v, ok := fc.Args[a.Name]
		if !ok || v == nil {
			continue
		}
		if t, ok := v.(time.Time); ok && a.Type.NamedType == "Date" {
			v = t.Format(time.DateOnly)
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode input %s: %w", a.Name, err)
		}
		if n > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(a.Name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(enc)
		n++
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// payload writes a typed mutation's payload: the updater's result, the
// affected products as the write left them, their freshness.
func (s *Schema) payload(ctx context.Context, oc *graphql.OperationContext, rt *root, o *outcome, sel ast.SelectionSet) graphql.Marshaler {
	def := s.schema.Types[rt.payload.name]
	fields := graphql.CollectFields(oc, sel, []string{def.Name})
	var buf []byte
	buf = append(buf, '{')
	base := graphql.GetPath(ctx)
	for i, f := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendQuote(buf, f.Alias)
		buf = append(buf, ':')
		fctx := graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: def.Name, Field: f, IsResolver: true})
		path := append(append(ast.Path(nil), base...), ast.PathName(f.Alias))
		fd := def.Fields.ForName(f.Name)
		switch {
		case f.Name == "__typename":
			buf = strconv.AppendQuote(buf, def.Name)
		case f.Name == rt.payload.result && rt.payload.result != "":
			v, err := resultJSON(o.out.Result)
			if err != nil {
				graphql.AddError(fctx, err)
				buf = append(buf, "null"...)
				continue
			}
			buf, _ = project(fctx, oc, s.schema, rt.keys, "updater "+rt.updater+"'s result", path, v, fd.Type, f.Selections, buf)
		case rt.payload.affected[f.Name] != "":
			prod := rt.payload.affected[f.Name]
			res, err := s.affected(fctx, o, prod)
			if err != nil {
				graphql.AddError(fctx, err)
				buf = append(buf, "null"...)
				continue
			}
			s.r.Cache.Record(ctx, res) // from the write's outcome, or read (recorded once)
			buf, _ = project(fctx, oc, s.schema, rt.payload.keys[prod], "product "+res.Key, path, res.Value, fd.Type, f.Selections, buf)
		case f.Name == "products":
			buf, _ = project(fctx, oc, s.schema, nil, "products", path, s.products(fctx, o), fd.Type, f.Selections, buf)
		default:
			buf = append(buf, "null"...)
		}
	}
	return raw(append(buf, '}'))
}

// resultJSON is what the updater returned, as JSON: one row (a list of
// one is that row; of more, an error: the type is one row).
func resultJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	if jsonKind(b) == '[' {
		els, err := appendElements(nil, b)
		switch {
		case err != nil:
			return nil, err
		case len(els) == 0:
			return nil, nil
		case len(els) > 1:
			return nil, fmt.Errorf("the updater returned %d rows; its result field is one row", len(els))
		}
		return els[0], nil
	}
	return b, nil
}

// affected is product prod keyed by the mutation's arguments, as the
// update left it (or read through the cache when the updater did not name
// that key), once the caller may read it.
func (s *Schema) affected(ctx context.Context, o *outcome, prod string) (cache.Result, error) {
	p := s.r.Cache.Registry().Product(prod)
	if p == nil {
		return cache.Result{}, fmt.Errorf("%w: no product named %s", primers.ErrUnknownProduct, prod)
	}
	args := make([]any, len(p.Params))
	for i, prm := range p.Params {
		for name, v := range o.args {
			if norm(name) == norm(prm.Name) {
				args[i] = v
			}
		}
	}
	k, err := s.r.Auth.FieldKey(ctx, prod, args...)
	if err != nil {
		return cache.Result{}, err
	}
	key := k.String()
	for _, it := range o.out.Products {
		if it.Key == key {
			if it.Err != nil {
				return cache.Result{}, it.Err
			}
			return it.Result, nil
		}
	}
	return s.r.Cache.GetKey(ctx, k)
}

// products is the payload's [Product!]!: every affected product the caller
// may read, with its freshness, as JSON for the projector. One that failed
// to refresh, or that the caller may not read, is left out with an error.
func (s *Schema) products(ctx context.Context, o *outcome) []byte {
	buf := []byte{'['}
	n := 0
	for _, it := range o.out.Products {
		if it.Err != nil {
			graphql.AddError(ctx, it.Err)
			continue
		}
		if _, err := s.r.Auth.ReadKey(ctx, it.Key); err != nil {
			graphql.AddError(ctx, err)
			continue
		}
		s.r.Cache.Record(ctx, it.Result)
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = productJSON(buf, it.Result)
	}
	return append(buf, ']')
}

// productJSON is r as the Product type's JSON.
func productJSON(buf []byte, r cache.Result) []byte {
	buf = append(buf, `{"key":`...)
	buf = appendJSONString(buf, r.Key)
	buf = append(buf, `,"version":"`...)
	buf = strconv.AppendUint(buf, r.Version, 10)
	buf = append(buf, `","computedAt":"`...)
	buf = r.ComputedAt.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","stale":`...)
	buf = strconv.AppendBool(buf, r.Stale)
	buf = append(buf, `,"value":`...)
	if len(r.Value) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, r.Value...)
	}
	return append(buf, '}')
}

// subscribe starts a dynamic subscription field (an operation has one root
// field): its current value at once, then each new version, as the
// compiled subscriptions do (graph.SubscribeProduct: the same slots,
// limits, access decision and freshness in each message).
func (s *Schema) subscribe(ctx context.Context, oc *graphql.OperationContext) graphql.ResponseHandler {
	typ := s.rootType(ast.Subscription)
	fields := graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{typ})
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: typ})
	if len(fields) != 1 {
		graphql.AddErrorf(ctx, "must subscribe to exactly one stream")
		return nil
	}
	f := fields[0]
	rt := s.roots[typ+"."+f.Name]
	if rt == nil {
		// Introspection alone: the compiled schema's subscription fields
		// do not mix with it (the validator allows only one root field).
		graphql.AddErrorf(ctx, "cannot subscribe to %s", f.Name)
		return nil
	}
	next := graphql.ResolveFieldStream(ctx, oc, f,
		func(ctx context.Context, f graphql.CollectedField) (*graphql.FieldContext, error) {
			return s.fieldContext(ctx, oc, typ, f)
		},
		func(ctx context.Context) (any, error) {
			args, err := s.keyArgs(rt.product, graphql.GetFieldContext(ctx))
			if err != nil {
				return nil, err
			}
			return graph.SubscribeProduct[json.RawMessage](ctx, s.r, rt.product, args...)
		},
		nil,
		func(ctx context.Context, sel ast.SelectionSet, v json.RawMessage) graphql.Marshaler {
			out, _ := project(ctx, oc, s.schema, rt.keys, "product "+rt.product, ast.Path{ast.PathName(f.Alias)}, v, rt.typ, sel, nil)
			return raw(out)
		},
		true, false)
	if next == nil {
		return nil
	}
	var buf bytes.Buffer
	return func(ctx context.Context) *graphql.Response {
		buf.Reset()
		data := next(ctx)
		if data == nil {
			return nil
		}
		data.MarshalGQL(&buf)
		return &graphql.Response{Data: bytes.Clone(buf.Bytes())}
	}
}
