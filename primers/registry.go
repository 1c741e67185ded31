package primers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Updater writes source data and names the product keys its write affects.
// The cache refreshes (or augments) those keys after Update returns.
type Updater interface {
	Update(ctx context.Context, input json.RawMessage) (UpdateResult, error)
}

// UpdaterFunc adapts a function to the Updater interface.
type UpdaterFunc func(ctx context.Context, input json.RawMessage) (UpdateResult, error)

// Update calls f.
func (f UpdaterFunc) Update(ctx context.Context, input json.RawMessage) (UpdateResult, error) {
	return f(ctx, input)
}

// UpdateResult is what an updater reports.
type UpdateResult struct {
	// Affected lists the keys whose products changed.
	Affected []string
	// Changes, when set, maps an affected key to the change to fold in with
	// the product's AugmentFunc; keys without one are recomputed.
	Changes map[string]any
	// Result is returned to the client (e.g. the id of a new row).
	Result any
}

// ErrBadInput marks an updater input the client got wrong; the edge answers
// it with a client error. Wrap it: fmt.Errorf("%w: year must be positive", ErrBadInput).
var ErrBadInput = errors.New("bad input")

// ErrUnknownUpdater is returned for an updater name that is not registered.
var ErrUnknownUpdater = errors.New("unknown updater")

// Registry holds the declared products and updaters. Fill it at start-up
// (Register, RegisterUpdaterAuth); after that it is read from any goroutine,
// and changed only by Change, which replaces its contents at once (the SQL
// products reloaded while the gateway runs).
type Registry struct {
	// cur is what readers see: replaced whole by Change, never modified
	// once published (Register writes into it only at start-up, before
	// anyone reads).
	cur atomic.Pointer[contents]
	mu  sync.Mutex // serialises Change
}

// contents are a registry's products and updaters.
type contents struct {
	products    map[string]*Product
	updaters    map[string]Updater
	updaterAuth map[string]Auth
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.cur.Store(&contents{products: map[string]*Product{}, updaters: map[string]Updater{}, updaterAuth: map[string]Auth{}})
	return r
}

// Change edits a copy of the registry with edit (Register, Unregister,
// RegisterUpdaterAuth, UnregisterUpdater on the copy it is given) and, when
// edit returns nil, makes the copy the registry's contents at once: each
// lookup (Product, Products, ParseKey, Updater...) sees every product and
// updater as before the change or as after it, never a mix (two lookups
// may see the two sides). An error leaves the registry as it was. A *Product read before the
// change stays valid (it is not modified), so a computation under way
// finishes with the declaration it started with.
func (r *Registry) Change(edit func(*Registry) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	next := &contents{
		products:    maps.Clone(old.products),
		updaters:    maps.Clone(old.updaters),
		updaterAuth: maps.Clone(old.updaterAuth),
	}
	scratch := &Registry{}
	scratch.cur.Store(next)
	if err := edit(scratch); err != nil {
		return err
	}
	r.cur.Store(scratch.cur.Load())
	return nil
}

// Unregister removes a product; false when none has that name. For the
// registry Change gives its edit function.
func (r *Registry) Unregister(name string) bool {
	c := r.cur.Load()
	_, ok := c.products[name]
	delete(c.products, name)
	return ok
}

// UnregisterUpdater removes an updater; false when none has that name. For
// the registry Change gives its edit function.
func (r *Registry) UnregisterUpdater(name string) bool {
	c := r.cur.Load()
	_, ok := c.updaters[name]
	delete(c.updaters, name)
	delete(c.updaterAuth, name)
	return ok
}

func cloneAuth(a Auth) Auth {
	a.Scopes = slices.Clone(a.Scopes)
	a.KeyBy = slices.Clone(a.KeyBy)
	if a.Bind != nil {
		b := make(map[string]string, len(a.Bind))
		maps.Copy(b, a.Bind)
		a.Bind = b
	}
	return a
}

// Register adds a product. It fails on a bad or duplicate name, a bad
// parameter, or a typed primer whose Go parameters differ from Params.
func (r *Registry) Register(p Product) error {
	if !validName(p.Name) {
		return fmt.Errorf("register product %q: name must match [A-Za-z_][A-Za-z0-9_]*", p.Name)
	}
	c := r.cur.Load()
	if _, dup := c.products[p.Name]; dup {
		return fmt.Errorf("register product %q: already registered", p.Name)
	}
	seen := map[string]bool{}
	for i, prm := range p.Params {
		if !validName(prm.Name) {
			return fmt.Errorf("register product %q: parameter %d: bad name %q", p.Name, i+1, prm.Name)
		}
		if seen[prm.Name] {
			return fmt.Errorf("register product %q: parameter %q declared twice", p.Name, prm.Name)
		}
		seen[prm.Name] = true
		if prm.Kind < Int || prm.Kind > Timestamp {
			return fmt.Errorf("register product %q: parameter %q: unknown kind %d", p.Name, prm.Name, prm.Kind)
		}
		if r := prm.Range; r != nil && (prm.Kind != Int || r.Min > r.Max) {
			return fmt.Errorf("register product %q: parameter %q: a range is Min <= Max on an int", p.Name, prm.Name)
		}
	}
	if p.TTL < 0 || p.SoftTTL < 0 || p.FreshnessTarget < 0 {
		return fmt.Errorf("register product %q: negative TTL, SoftTTL or FreshnessTarget", p.Name)
	}
	if p.TTL > 0 && p.SoftTTL >= p.TTL {
		return fmt.Errorf("register product %q: SoftTTL (%v) must be shorter than TTL (%v)", p.Name, p.SoftTTL, p.TTL)
	}
	if p.Primer != nil && isNilValue(p.Primer) {
		return fmt.Errorf("register product %q: primer is a nil %T (leave Primer unset for a product that only holds Set values)", p.Name, p.Primer)
	}
	names := make([]string, len(p.Params))
	for i, prm := range p.Params {
		names[i] = prm.Name
	}
	if err := p.Auth.check(fmt.Sprintf("register product %q", p.Name), names, true); err != nil {
		return err
	}
	p.Params = append([]Param(nil), p.Params...)
	for i, prm := range p.Params {
		if prm.Range != nil {
			rc := *prm.Range
			p.Params[i].Range = &rc // the caller's value may change later
		}
	}
	p.keyParams = nil
	if len(p.Auth.KeyBy) > 0 {
		p.keyParams = append([]Param(nil), p.Params...)
		for _, claim := range p.Auth.KeyBy {
			if slices.ContainsFunc(p.keyParams, func(x Param) bool { return x.Name == claim }) {
				return fmt.Errorf("register product %q: key_by claim %q given twice", p.Name, claim)
			}
			p.keyParams = append(p.keyParams, Param{Name: claim, Kind: String})
		}
	}
	p.Auth = cloneAuth(p.Auth)
	if err := p.checkSchedule(); err != nil {
		return fmt.Errorf("register product %q: %w", p.Name, err)
	}
	if kd, ok := p.Primer.(kindsDeclarer); ok {
		want, have := kd.paramKinds(), p.KeyParams()
		if len(want) != len(have) {
			return fmt.Errorf("register product %q: primer takes %d parameters, declaration has %d", p.Name, len(want), len(have))
		}
		for i, k := range want {
			got := have[i].Kind
			if got != k && !(k == timeKind && (got == Date || got == Timestamp)) {
				return fmt.Errorf("register product %q: parameter %q is declared %v but the primer takes %v", p.Name, have[i].Name, got, k)
			}
		}
	}
	// Warm keys are parsed as keys of the product, so it must be in the
	// registry while they are.
	c.products[p.Name] = &p
	for _, k := range p.Warm {
		key, err := r.ParseKey(k)
		if err == nil && key.Name != p.Name {
			err = fmt.Errorf("not a key of %s", p.Name)
		}
		if err != nil {
			delete(c.products, p.Name)
			return fmt.Errorf("register product %q: warm key %q: %w", p.Name, k, err)
		}
	}
	return nil
}

// checkSchedule checks the declaration's refresh, domain and sources, and
// copies its slices, which the caller may change later.
func (p *Product) checkSchedule() error {
	if !p.Refresh.IsZero() {
		if err := p.Refresh.Validate(); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
	}
	if !p.Domain.IsZero() {
		if _, _, err := splitKey(p.Domain.Key); err != nil {
			return fmt.Errorf("domain: %w", err)
		}
		if err := p.Domain.Schedule.Validate(); err != nil {
			return fmt.Errorf("domain %s: %w", p.Domain.Key, err)
		}
	}
	params := p.KeyParams()
	p.Sources = slices.Clone(p.Sources)
	for i, src := range p.Sources {
		if !validName(src.Table) {
			return fmt.Errorf("source %d: table %q must match [A-Za-z_][A-Za-z0-9_]*", i+1, src.Table)
		}
		if !src.All && len(src.Columns) != len(params) {
			return fmt.Errorf("source %s: %d columns for %d key parameters %s (or All)", src.Table, len(src.Columns), len(params), paramList(params))
		}
		for _, c := range src.Columns {
			if !validName(c) {
				return fmt.Errorf("source %s: column %q must match [A-Za-z_][A-Za-z0-9_]*", src.Table, c)
			}
		}
		p.Sources[i].Columns = slices.Clone(src.Columns)
	}
	p.Warm = slices.Clone(p.Warm)
	p.AfterPrimes = slices.Clone(p.AfterPrimes)
	p.AfterUpdates = slices.Clone(p.AfterUpdates)
	return nil
}

// MustRegister is Register for start-up code that cannot go on without it.
func (r *Registry) MustRegister(ps ...Product) {
	for _, p := range ps {
		if err := r.Register(p); err != nil {
			panic(err)
		}
	}
}

// RegisterUpdater adds a named updater that any verified token may run
// (the zero Auth); RegisterUpdaterAuth declares who may.
func (r *Registry) RegisterUpdater(name string, u Updater) error {
	return r.RegisterUpdaterAuth(name, u, Auth{})
}

// RegisterUpdaterAuth adds a named updater with its access policy. A Bind
// names top-level fields of the updater's JSON input.
func (r *Registry) RegisterUpdaterAuth(name string, u Updater, a Auth) error {
	if err := a.check(fmt.Sprintf("register updater %q", name), nil, false); err != nil {
		return err
	}
	if !validName(name) {
		return fmt.Errorf("register updater %q: name must match [A-Za-z_][A-Za-z0-9_]*", name)
	}
	c := r.cur.Load()
	if _, dup := c.updaters[name]; dup {
		return fmt.Errorf("register updater %q: already registered", name)
	}
	if u == nil || isNilValue(u) {
		return fmt.Errorf("register updater %q: nil updater", name)
	}
	c.updaters[name] = u
	c.updaterAuth[name] = cloneAuth(a)
	return nil
}

// UpdaterNames returns the names of the registered updaters, sorted.
func (r *Registry) UpdaterNames() []string {
	c := r.cur.Load()
	out := make([]string, 0, len(c.updaters))
	for name := range c.updaters {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// UpdaterAuth returns the access policy of a registered updater.
func (r *Registry) UpdaterAuth(name string) Auth { return r.cur.Load().updaterAuth[name] }

// Product returns the declaration of a product, or nil.
func (r *Registry) Product(name string) *Product { return r.cur.Load().products[name] }

// Products returns all declarations, sorted by name.
func (r *Registry) Products() []*Product {
	c := r.cur.Load()
	out := make([]*Product, 0, len(c.products))
	for _, p := range c.products {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Updater returns a named updater or an error wrapping ErrUnknownUpdater.
func (r *Registry) Updater(name string) (Updater, error) {
	u, ok := r.cur.Load().updaters[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUpdater, name)
	}
	return u, nil
}

// ParseKey parses a key string against the registered products.
func (r *Registry) ParseKey(s string) (Key, error) {
	name, segs, err := splitKey(s)
	if err != nil {
		return Key{}, err
	}
	p, ok := r.cur.Load().products[name]
	if !ok {
		return Key{}, &KeyError{Key: s, Reason: "no product named " + name, Err: ErrUnknownProduct}
	}
	params := p.KeyParams()
	if len(segs) != len(params) {
		return Key{}, &KeyError{Key: s, Reason: fmt.Sprintf("%s takes %d parameters %s, got %d", name, len(params), paramList(params), len(segs)), Err: ErrBadParams}
	}
	args := make([]any, len(segs))
	for i, seg := range segs {
		v, err := parseArg(params[i].Kind, seg)
		if err == nil {
			err = checkRange(params[i], v)
		}
		if err != nil {
			return Key{}, &KeyError{Key: s, Reason: fmt.Sprintf("parameter %s (%v): %v", params[i].Name, params[i].Kind, err), Err: ErrBadParams}
		}
		args[i] = v
	}
	return Key{Name: name, Args: args, params: params}, nil
}

// SplitName returns the product name of a key string without checking the
// rest, for keys of products that are not registered (values that were Set).
func SplitName(s string) (string, error) {
	name, _, err := splitKey(s)
	return name, err
}

// Key builds a key from typed Go values, as GraphQL arguments arrive
// (int, float64, string, bool, time.Time).
func (r *Registry) Key(name string, args ...any) (Key, error) {
	p, ok := r.cur.Load().products[name]
	if !ok {
		return Key{}, &KeyError{Key: name, Reason: "no product named " + name, Err: ErrUnknownProduct}
	}
	params := p.KeyParams()
	if len(args) != len(params) {
		return Key{}, &KeyError{Key: name, Reason: fmt.Sprintf("%s takes %d parameters %s, got %d", name, len(params), paramList(params), len(args)), Err: ErrBadParams}
	}
	out := make([]any, len(args))
	for i, a := range args {
		v, ok := convertArg(params[i].Kind, a)
		if !ok {
			return Key{}, &KeyError{Key: name, Reason: fmt.Sprintf("parameter %s wants %v, got %T", params[i].Name, params[i].Kind, a), Err: ErrBadParams}
		}
		if err := checkRange(params[i], v); err != nil {
			return Key{}, &KeyError{Key: name, Reason: fmt.Sprintf("parameter %s (%v): %v", params[i].Name, params[i].Kind, err), Err: ErrBadParams}
		}
		out[i] = v
	}
	k := Key{Name: name, Args: out, params: params}
	// Only string values can make a key long: format it only when they might.
	n := len(name) + 40*len(out)
	for _, a := range out {
		if s, ok := a.(string); ok {
			n += len(s)
		}
	}
	if n > MaxKeyBytes {
		if s := k.String(); len(s) > MaxKeyBytes {
			return Key{}, &KeyError{Key: s, Reason: fmt.Sprintf("longer than %d bytes", MaxKeyBytes), Err: ErrMalformedKey}
		}
	}
	return k, nil
}

// checkRange checks an argument against its parameter's range and check.
func checkRange(p Param, v any) error {
	if n, ok := v.(int64); ok {
		if err := p.Range.check(n); err != nil {
			return err
		}
	}
	if p.Check != nil {
		return p.Check(v)
	}
	return nil
}

func paramList(ps []Param) string {
	s := "("
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.Name + " " + p.Kind.String()
	}
	return s + ")"
}

// ArgType lists the Go types a typed primer may take.
type ArgType interface {
	int64 | float64 | string | bool | time.Time
}

// timeKind stands for "Date or Timestamp": both arrive as time.Time.
const timeKind Kind = 255

func kindOf[A ArgType]() Kind {
	var a A
	switch any(a).(type) {
	case int64:
		return Int
	case float64:
		return Float
	case string:
		return String
	case bool:
		return Bool
	case time.Time:
		return timeKind
	}
	return 0
}

type func1[A ArgType, R any] func(context.Context, A) (R, error)

func (f func1[A, R]) Prime(ctx context.Context, k Key) (any, error) { return f(ctx, k.Args[0].(A)) }
func (f func1[A, R]) paramKinds() []Kind                            { return []Kind{kindOf[A]()} }

type func2[A, B ArgType, R any] func(context.Context, A, B) (R, error)

func (f func2[A, B, R]) Prime(ctx context.Context, k Key) (any, error) {
	return f(ctx, k.Args[0].(A), k.Args[1].(B))
}
func (f func2[A, B, R]) paramKinds() []Kind { return []Kind{kindOf[A](), kindOf[B]()} }

// Func1 makes a primer of a function of one typed parameter. Registration
// checks that the product declares one parameter of the matching kind.
func Func1[A ArgType, R any](fn func(context.Context, A) (R, error)) Primer { return func1[A, R](fn) }

// Func2 makes a primer of a function of two typed parameters.
func Func2[A, B ArgType, R any](fn func(context.Context, A, B) (R, error)) Primer {
	return func2[A, B, R](fn)
}

// isNilValue reports whether v holds a nil func, pointer, map or the like:
// such a primer or updater would panic on its first call, long after start-up.
func isNilValue(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
