package gqlhttp

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/graph/directives"
	"github.com/kck-go/kck/trusted"
)

// Limits bound what one GraphQL document may cost. Tokens, depth, aliases,
// root fields and fields are checked on the parsed document before gqlgen
// validates it: validation does work that grows with the square of repeated
// fields, so an unchecked document of a megabyte could hold a core for
// minutes whatever the request timeout. Complexity is checked after
// validation (it needs the schema types), on a document the other limits
// have already bounded. A zero field takes its default; a negative one turns
// the limit off.
type Limits struct {
	// MaxTokens bounds the lexical tokens (names, punctuation, values,
	// comments) of a document. Default 15,000.
	MaxTokens int
	// MaxDepth bounds the nesting of selections, fragments expanded; the
	// selections under __schema and __type are left to gqlparser's own
	// introspection-depth rule. Default 12.
	MaxDepth int
	// MaxAliases bounds the aliased fields, fragments expanded. Default 30.
	MaxAliases int
	// MaxRootFields bounds the top-level fields of one operation,
	// fragments expanded. Default 50.
	MaxRootFields int
	// MaxFields bounds every field of the document, fragments expanded
	// wherever they are spread, and the fields of fragments nothing spreads.
	// Default 500.
	MaxFields int
	// MaxRepeats bounds how often one response name occurs in one
	// selection set (fields merged from inline fragments and fragment
	// spreads included; a fragment spread twice counts once). The
	// validator compares every pair of such fields, so this keeps its
	// work linear. Default 20.
	MaxRepeats int
	// MaxComplexity bounds gqlgen's complexity of the operation: each field
	// costs 1 plus its children, a field that reads or writes a product
	// costs ProductCost plus its children. Default 1,000.
	MaxComplexity int
	// ProductCost is the complexity of one product field. Default 10.
	ProductCost int
	// MaxBatch, when positive, accepts a JSON array of at most that many
	// requests in one POST (batching, as Apollo's BatchHttpLink sends):
	// each runs as its own operation under every limit above, and the batch
	// shares one request's time and miss budget. Default 0: refused.
	MaxBatch int
}

// The limit names, in extensions.limit of a refusal and in metrics.
const (
	LimitTokens        = "tokens"
	LimitDepth         = "depth"
	LimitAliases       = "aliases"
	LimitRootFields    = "root_fields"
	LimitFields        = "fields"
	LimitRepeats       = "repeated_fields"
	LimitComplexity    = "complexity"
	LimitBatch         = "batch"
	LimitIntrospection = "introspection"
)

// WithDefaults returns l with defaults in its zero fields.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxTokens, 15000)
	def(&l.MaxDepth, 12)
	def(&l.MaxAliases, 30)
	def(&l.MaxRootFields, 50)
	def(&l.MaxFields, 500)
	def(&l.MaxRepeats, 20)
	def(&l.MaxComplexity, 1000)
	def(&l.ProductCost, 10)
	return l
}

func init() {
	// A refused document is a protocol error to gqlgen's transports, like
	// one that fails validation: HTTP 422 (400 for
	// application/graphql-response+json). gqlgen keeps this table in a
	// package variable with no lock, so it is written once, here, before any
	// handler runs.
	errcode.RegisterErrorType(apierror.LimitExceeded, errcode.KindProtocol)
}

// refusal is the GraphQL error of a document or request beyond a limit.
func refusal(limit string, max, got int, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": apierror.LimitExceeded, "limit": limit, "max": max}
	if got > 0 {
		err.Extensions["got"] = got
	}
	return err
}

// limiter is the gqlgen extension that enforces Limits. It also fronts the
// APQ extension, so that a query is checked before APQ keeps it, and a query
// APQ hands back (it was checked when kept) is not walked again.
type limiter struct {
	limits     Limits
	noIntro    bool
	apq        *extension.AutomaticPersistedQuery
	queryCache graphql.Cache[*ast.QueryDocument] // documents that passed
	costed     graphql.ExecutableSchema          // for complexity
	onRefused  func(limit string)
	trusted    *trusted.Store // nil: every document may run
}

var (
	_ graphql.HandlerExtension          = (*limiter)(nil)
	_ graphql.OperationParameterMutator = (*limiter)(nil)
	_ graphql.OperationContextMutator   = (*limiter)(nil)
)

func (*limiter) ExtensionName() string { return "KCKLimits" }

func (l *limiter) Validate(es graphql.ExecutableSchema) error {
	l.costed = costedSchema{ExecutableSchema: es, cost: l.limits.ProductCost, fields: productFields(es.Schema())}
	return l.apq.Validate(es)
}

func (l *limiter) refuse(err *gqlerror.Error) *gqlerror.Error {
	if l.onRefused != nil {
		l.onRefused(err.Extensions["limit"].(string))
	}
	return err
}

// MutateOperationParameters runs before gqlgen parses and validates the
// query.
func (l *limiter) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if l.trusted != nil {
		if err := l.trust(ctx, params); err != nil {
			return err
		}
	}
	if params.Query != "" {
		if err := l.check(ctx, params.Query, params.OperationName); err != nil {
			return err
		}
		return l.apq.MutateOperationParameters(ctx, params)
	}
	// A hash alone: APQ fills in a query that passed when it was kept.
	return l.apq.MutateOperationParameters(ctx, params)
}

// check refuses a query beyond the limits. A query in the parsed-query
// cache passed them before (they do not change while the process runs).
func (l *limiter) check(ctx context.Context, query, opName string) *gqlerror.Error {
	if _, ok := l.queryCache.Get(ctx, query); ok {
		return nil
	}
	// Counting tokens stops at the limit, so a huge document costs no more
	// than a document at the limit.
	if max := l.limits.MaxTokens; max > 0 {
		lx := lexer.New(&ast.Source{Input: query})
		for n := 0; ; n++ {
			tok, err := lx.ReadToken()
			if err != nil || tok.Kind == lexer.EOF {
				break // a lexical error is the parser's to report
			}
			if n >= max {
				return l.refuse(refusal(LimitTokens, max, 0, "the document has more than %d tokens", max))
			}
		}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		if gqlErr, ok := err.(*gqlerror.Error); ok {
			errcode.Set(gqlErr, errcode.ParseFailed)
			return gqlErr
		}
		return gqlerror.Errorf("%v", err)
	}
	s := measure(doc, l.noIntro)
	switch lim := l.limits; {
	case s.introspection:
		return l.refuse(refusal(LimitIntrospection, 0, 0, "introspection is disabled"))
	case lim.MaxRootFields > 0 && s.rootFields > lim.MaxRootFields:
		return l.refuse(refusal(LimitRootFields, lim.MaxRootFields, s.rootFields, "an operation has %d top-level fields; the most is %d", s.rootFields, lim.MaxRootFields))
	case lim.MaxFields > 0 && s.fields > lim.MaxFields:
		return l.refuse(refusal(LimitFields, lim.MaxFields, s.fields, "the document has %s fields (fragments expanded); the most is %d", atLeast(s.fields), lim.MaxFields))
	case lim.MaxDepth > 0 && s.depth > lim.MaxDepth:
		return l.refuse(refusal(LimitDepth, lim.MaxDepth, s.depth, "the document nests %s deep; the most is %d", atLeast(s.depth), lim.MaxDepth))
	case lim.MaxAliases > 0 && s.aliases > lim.MaxAliases:
		return l.refuse(refusal(LimitAliases, lim.MaxAliases, s.aliases, "the document has %s aliases; the most is %d", atLeast(s.aliases), lim.MaxAliases))
	case s.cycle != "":
		// The validator would refuse it too, after expanding the cycle.
		err := gqlerror.Errorf("Cannot spread fragment %q within itself.", s.cycle)
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	// With the fields bounded, the document can be walked expanded.
	if max := l.limits.MaxRepeats; max > 0 {
		if name, n := repeats(doc, max); n > max {
			return l.refuse(refusal(LimitRepeats, max, n, "the field %q occurs %d times in one selection set; the most is %d", name, n, max))
		}
	}
	return nil
}

func atLeast(n int) string {
	if n >= saturated {
		return fmt.Sprintf("more than %d", saturated)
	}
	return fmt.Sprint(n)
}

// MutateOperationContext runs after validation: the complexity limit.
func (l *limiter) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	max := l.limits.MaxComplexity
	if max <= 0 || op.Operation == nil {
		return nil
	}
	if c := complexity.Calculate(ctx, l.costed, op.Operation, op.Variables); c > max {
		return l.refuse(refusal(LimitComplexity, max, c, "the operation has complexity %d; the most is %d (a product field costs %d)", c, max, l.limits.ProductCost))
	}
	return nil
}

// costedSchema gives product fields their cost in gqlgen's complexity.
type costedSchema struct {
	graphql.ExecutableSchema
	cost   int
	fields map[string]bool // "Type.field"
}

func (s costedSchema) Complexity(ctx context.Context, typeName, field string, child int, args map[string]any) (int, bool) {
	if s.fields[typeName+"."+field] {
		return child + s.cost, true
	}
	return s.ExecutableSchema.Complexity(ctx, typeName, field, child, args)
}

// productFields are the fields that read or write products: every @product
// field, and product, refresh and update.
func productFields(schema *ast.Schema) map[string]bool {
	out := map[string]bool{"Query.product": true, "Mutation.refresh": true, "Mutation.update": true, "Subscription.product": true}
	for _, t := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if t == nil {
			continue
		}
		for _, f := range t.Fields {
			if f.Directives.ForName(directives.Product) != nil {
				out[t.Name+"."+f.Name] = true
			}
		}
	}
	return out
}

// saturated caps the counts: fragments spread inside fragments multiply,
// and the walk must neither overflow nor expand them.
const saturated = 1 << 30

func sat(a, b int) int { return min(a+b, saturated) }

// docStats are what measure counts of a document.
type docStats struct {
	fields, aliases, depth, rootFields int
	introspection                      bool   // __schema or __type, when refused
	cycle                              string // a fragment spread within itself
}

// setStats are the counts of one selection set.
type setStats struct {
	fields, aliases, depth, top int // top: fields at this level
}

type measurer struct {
	frags    map[string]*ast.FragmentDefinition
	memo     map[string]setStats
	visiting map[string]bool
	noIntro  bool
	intro    bool
	cycle    string
}

// measure counts the fields, aliases, depth and top-level fields of doc in
// one pass over each definition: a fragment is measured once and its counts
// added wherever it is spread, so the walk is linear in the document
// however the fragments multiply. A fragment cycle counts nothing (the
// validator refuses it).
func measure(doc *ast.QueryDocument, noIntro bool) docStats {
	m := &measurer{frags: map[string]*ast.FragmentDefinition{}, memo: map[string]setStats{}, visiting: map[string]bool{}, noIntro: noIntro}
	for _, f := range doc.Fragments {
		if _, dup := m.frags[f.Name]; !dup {
			m.frags[f.Name] = f
		}
	}
	var s docStats
	for _, op := range doc.Operations {
		st := m.set(op.SelectionSet)
		s.fields = sat(s.fields, st.fields)
		s.aliases = sat(s.aliases, st.aliases)
		s.depth = max(s.depth, st.depth)
		s.rootFields = max(s.rootFields, st.top)
	}
	// Every fragment is validated, spread or not.
	for _, f := range doc.Fragments {
		st := m.set(f.SelectionSet)
		if !m.spread(f.Name) {
			s.fields = sat(s.fields, st.fields)
		}
	}
	s.introspection = m.intro
	s.cycle = m.cycle
	return s
}

// spread reports whether a fragment was measured through a spread.
func (m *measurer) spread(name string) bool {
	_, ok := m.memo[name]
	return ok
}

func (m *measurer) set(ss ast.SelectionSet) setStats {
	var s setStats
	add := func(c setStats, depthOffset int) {
		s.fields = sat(s.fields, c.fields)
		s.aliases = sat(s.aliases, c.aliases)
		s.depth = max(s.depth, sat(c.depth, depthOffset))
	}
	for _, sel := range ss {
		switch x := sel.(type) {
		case *ast.Field:
			s.fields = sat(s.fields, 1)
			s.top = sat(s.top, 1)
			if x.Alias != "" && x.Alias != x.Name {
				s.aliases = sat(s.aliases, 1)
			}
			intro := x.Name == "__schema" || x.Name == "__type"
			if m.noIntro && intro {
				m.intro = true
			}
			c := m.set(x.SelectionSet)
			if intro {
				// The introspection query that GraphiQL and the playground
				// send nests ofType deeper than product queries need; its
				// depth is the validator's own introspection-depth rule's.
				c.depth = 0
			}
			add(c, 1)
			s.depth = max(s.depth, 1)
		case *ast.InlineFragment:
			c := m.set(x.SelectionSet)
			add(c, 0)
			s.top = sat(s.top, c.top)
		case *ast.FragmentSpread:
			c := m.fragment(x.Name)
			add(c, 0)
			s.top = sat(s.top, c.top)
		}
	}
	return s
}

func (m *measurer) fragment(name string) setStats {
	if c, ok := m.memo[name]; ok {
		return c
	}
	f, ok := m.frags[name]
	if !ok {
		return setStats{}
	}
	if m.visiting[name] {
		m.cycle = name
		return setStats{}
	}
	m.visiting[name] = true
	c := m.set(f.SelectionSet)
	delete(m.visiting, name)
	m.memo[name] = c
	return c
}

// repeats returns the response name that occurs most often in one
// selection set of doc, and how often: fields merged from inline fragments
// and spreads count, a fragment spread twice into one set counts once (as
// the validator does). Call it only on a document whose fields, fragments
// expanded, are bounded and whose fragments have no cycle; it stops early
// once a name passes limit.
func repeats(doc *ast.QueryDocument, limit int) (string, int) {
	frags := map[string]*ast.FragmentDefinition{}
	for _, f := range doc.Fragments {
		if _, dup := frags[f.Name]; !dup {
			frags[f.Name] = f
		}
	}
	worst, most := "", 0
	var set func(ss ast.SelectionSet)
	set = func(ss ast.SelectionSet) {
		counts := map[string]int{}
		spread := map[string]bool{}
		var subs []ast.SelectionSet
		var flatten func(ss ast.SelectionSet)
		flatten = func(ss ast.SelectionSet) {
			for _, sel := range ss {
				if most > limit {
					return
				}
				switch x := sel.(type) {
				case *ast.Field:
					counts[x.Alias]++
					if n := counts[x.Alias]; n > most {
						worst, most = x.Alias, n
					}
					if len(x.SelectionSet) > 0 {
						subs = append(subs, x.SelectionSet)
					}
				case *ast.InlineFragment:
					flatten(x.SelectionSet)
				case *ast.FragmentSpread:
					if f, ok := frags[x.Name]; ok && !spread[x.Name] {
						spread[x.Name] = true
						flatten(f.SelectionSet)
					}
				}
			}
		}
		flatten(ss)
		for _, sub := range subs {
			if most > limit {
				return
			}
			set(sub)
		}
	}
	for _, op := range doc.Operations {
		set(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		set(f.SelectionSet)
	}
	return worst, most
}
