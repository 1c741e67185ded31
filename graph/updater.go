package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph/directives"
	"github.com/kck-go/kck/graph/model"
	"github.com/kck-go/kck/primers"
)

// Payload is the Go model of every typed mutation's payload type (the type
// an @updater field returns): the update's outcome, and the mutation's
// arguments, which key its @affected fields. Its fields are resolved by the
// code the productfield plugin writes.
type Payload struct {
	updater string
	args    []updaterArg
	out     cache.UpdateOutcome
}

// updaterArg is one argument of a typed mutation: a field of the updater's
// input.
type updaterArg struct {
	name  string
	value any
}

// runUpdater is the body of every typed mutation: its arguments become the
// updater's JSON input, and from there it is update(name, input), the same
// policy check first.
func runUpdater(ctx context.Context, r *Resolver, name string, args []updaterArg) (*Payload, error) {
	input, err := updaterInput(args)
	if err != nil {
		return nil, fmt.Errorf("updater %s: encode input: %w", name, err)
	}
	if err := r.Auth.Update(ctx, name, input); err != nil {
		return nil, err
	}
	out, err := r.Cache.Update(ctx, name, input)
	if err != nil {
		return nil, err
	}
	return &Payload{updater: name, args: args, out: out}, nil
}

// updaterInput encodes the arguments as one JSON object, in their order. A
// nullable argument left out (nil) is left out of the input too.
func updaterInput(args []updaterArg) (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, a := range args {
		if isNil(a.value) {
			continue
		}
		v, err := json.Marshal(a.value)
		if err != nil {
			return nil, err
		}
		k, _ := json.Marshal(a.name)
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		n++
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// arg returns the mutation's argument that stands for parameter prm
// (authorId for author_id).
func (p *Payload) arg(prm string) (any, bool) {
	for _, a := range p.args {
		if normalize(a.name) == normalize(prm) {
			return a.value, true
		}
	}
	return nil, false
}

// resolveAffected is the body of every @affected payload field: the key is
// built from the mutation's arguments (and a per-user product's claims),
// checked against the caller's policy like a query field, and its value is
// the one the update refreshed, or, for a product the updater did not name,
// read through the cache.
func resolveAffected[T any](ctx context.Context, r *Resolver, p *Payload, name string) (T, error) {
	var zero T
	prod := r.Cache.Registry().Product(name)
	if prod == nil {
		return zero, fmt.Errorf("%w: no product named %s", primers.ErrUnknownProduct, name)
	}
	args := make([]any, len(prod.Params))
	for i, prm := range prod.Params {
		v, ok := p.arg(prm.Name)
		if !ok {
			// CheckUpdaters refuses such a schema at start-up.
			return zero, fmt.Errorf("product %s: the mutation has no argument for parameter %s", name, prm.Name)
		}
		args[i] = v
	}
	k, err := r.Auth.FieldKey(ctx, name, args...)
	if err != nil {
		return zero, err
	}
	key := k.String()
	res, found := cache.Result{}, false
	for _, it := range p.out.Products {
		if it.Key == key {
			if it.Err != nil {
				return zero, it.Err
			}
			res, found = it.Result, true
			r.Cache.Record(ctx, res) // the write's outcome, not read through the cache
			break
		}
	}
	if !found {
		if res, err = r.Cache.GetKey(ctx, k); err != nil {
			return zero, err
		}
	}
	return decodeProduct[T](res)
}

// decodeUpdateResult is the body of an @updateResult field: what the
// updater returned, as the field's type. An updater that returned nothing
// gives null (the field is nullable).
func decodeUpdateResult[T any](p *Payload) (T, error) {
	var out T
	if p.out.Result == nil {
		return out, nil
	}
	raw, err := json.Marshal(p.out.Result)
	if err != nil {
		return out, fmt.Errorf("updater %s: encode result: %w", p.updater, err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("updater %s: its result does not fit its GraphQL type: %w", p.updater, err)
	}
	return out, nil
}

// affectedProducts is the body of a payload's [Product!]! field: every
// product the updater affected, with its freshness, as update(name, input)
// returns them. One that failed to refresh, or that the caller may not
// read, is left out with an error.
func affectedProducts(ctx context.Context, r *Resolver, p *Payload) ([]*model.Product, error) {
	out := make([]*model.Product, 0, len(p.out.Products))
	for _, it := range p.out.Products {
		if it.Err != nil {
			graphql.AddError(ctx, it.Err)
			continue
		}
		if _, err := r.Auth.ReadKey(ctx, it.Key); err != nil {
			graphql.AddError(ctx, err)
			continue
		}
		r.Cache.Record(ctx, it.Result)
		out = append(out, toProduct(it.Result))
	}
	return out, nil
}

// CheckUpdaters verifies, at start-up, every typed mutation: its updater is
// registered, and each @affected field of its payload names a registered
// product whose every parameter is an argument of the mutation (by name,
// non-null, of the parameter's type). The updater checks the input itself
// when it runs, as it does for update(name, input).
func CheckUpdaters(schema *ast.Schema, reg *primers.Registry) error {
	if schema.Mutation == nil {
		return nil
	}
	var errs []error
	for _, f := range schema.Mutation.Fields {
		d := f.Directives.ForName(directives.Updater)
		if d == nil {
			continue
		}
		where := "Mutation." + f.Name
		if f.Position != nil && f.Position.Src != nil {
			where = fmt.Sprintf("%s:%d: %s", f.Position.Src.Name, f.Position.Line, where)
		}
		name := d.Arguments.ForName("name").Value.Raw
		if _, err := reg.Updater(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: bound to updater %q, which is not registered", where, name))
		}
		pt := schema.Types[f.Type.Name()]
		if pt == nil {
			continue
		}
		for _, pf := range pt.Fields {
			ad := pf.Directives.ForName(directives.Affected)
			if ad == nil {
				continue
			}
			pwhere := fmt.Sprintf("%s: %s.%s", where, pt.Name, pf.Name)
			pname := ad.Arguments.ForName("name").Value.Raw
			p := reg.Product(pname)
			if p == nil {
				errs = append(errs, fmt.Errorf("%s: @affected product %q is not registered", pwhere, pname))
				continue
			}
			for _, prm := range p.Params {
				var a *ast.ArgumentDefinition
				for _, x := range f.Arguments {
					if normalize(x.Name) == normalize(prm.Name) {
						a = x
					}
				}
				switch {
				case a == nil:
					errs = append(errs, fmt.Errorf("%s: product %q's parameter %s is no argument of %s", pwhere, pname, prm.Name, f.Name))
				case !a.Type.NonNull || a.Type.Elem != nil || !fits(a.Type.NamedType, prm.Kind):
					errs = append(errs, fmt.Errorf("%s: argument %s is %s but product %q's parameter %s wants %s! (non-null)", pwhere, a.Name, a.Type.String(), pname, prm.Name, graphqlType(prm.Kind)))
				}
			}
		}
	}
	return errors.Join(errs...)
}
