package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/graph"
	"github.com/kck-go/kck/graph/dynamic"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
	"github.com/kck-go/kck/source/sqlproduct"
)

// The SQL products' typed GraphQL API (issue 28): every SQL product and
// updater that the compiled schema does not declare gets a typed field, a
// subscription or a typed mutation, made from its statement as PostgreSQL
// describes it (sqlproduct.DescribeAPI) and served by graph/dynamic. With
// --sql-dir the folder is watched (polled every --sql-watch) and read again
// on SIGHUP: a reload validates every file against the database, then
// replaces the products, updaters and schema at once; a bad file is
// refused with its file and line, and what was in force keeps serving.

// Spec is the GraphQL API of the SQL products, for graph/dynamic.
func Spec(api *sqlproduct.API) dynamic.Spec {
	var s dynamic.Spec
	if api == nil {
		return s
	}
	object := func(o *sqlproduct.APIObject, file string, line int) *dynamic.Object {
		if o == nil {
			return nil
		}
		do := &dynamic.Object{Name: o.Name, Pos: dynamic.Pos{File: file, Line: line}}
		if o.Line > 0 {
			do.Pos.Line = o.Line
		}
		for _, f := range o.Fields {
			do.Fields = append(do.Fields, dynamic.Field{Name: f.Name, Key: f.Column, Type: f.Type, Pos: dynamic.Pos{File: file, Line: f.Line}})
		}
		return do
	}
	args := func(as []sqlproduct.APIArg) []dynamic.Arg {
		out := make([]dynamic.Arg, len(as))
		for i, a := range as {
			out[i] = dynamic.Arg{Name: a.Name, Type: a.Type}
		}
		return out
	}
	for _, p := range api.Products {
		key := p.Product.Name
		for _, prm := range p.Product.Params {
			if !prm.Hidden {
				key += "/{" + prm.Name + "}"
			}
		}
		s.Products = append(s.Products, dynamic.Product{
			Name: p.Product.Name, Field: p.Field, Args: args(p.Args), Type: p.Type,
			Object:      object(p.Object, p.Product.File, p.Product.Line),
			Description: fmt.Sprintf("Product %s, from %s.", key, p.Product.File),
			Pos:         dynamic.Pos{File: p.Product.File, Line: p.Product.Line},
		})
	}
	for _, u := range api.Updaters {
		var affects []string
		for _, t := range u.Updater.Affects {
			name, _, _ := strings.Cut(t, "/")
			affects = append(affects, name)
		}
		s.Updaters = append(s.Updaters, dynamic.Updater{
			Name: u.Updater.Name, Field: u.Field, Args: args(u.Args),
			Result: object(u.Result, u.Updater.File, u.Updater.Line), Affects: affects,
			Description: fmt.Sprintf("Runs updater %s (%s), then refreshes the products it affects and returns them fresh.", u.Updater.Name, u.Updater.File),
			Pos:         dynamic.Pos{File: u.Updater.File, Line: u.Updater.Line},
		})
	}
	return s
}

// Extend is the graph.Extend that serves api's products beside the
// compiled schema, for registry reg; nil when there is nothing to add.
// With prune (KCK's own schema), the compiled fields of products reg lacks
// (the demo's, when the gateway serves a folder of SQL products) are left
// out.
func Extend(api *sqlproduct.API, reg *primers.Registry, prune bool) graph.Extend {
	if !prune && (api == nil || len(api.Products)+len(api.Updaters) == 0) {
		return nil
	}
	spec := Spec(api)
	spec.Prune = prune
	return func(compiled graphql.ExecutableSchema, r *graph.Resolver) (graphql.ExecutableSchema, error) {
		s, err := dynamic.New(compiled, r, reg, spec)
		if err != nil {
			return nil, err
		}
		if !s.Merged() {
			return compiled, nil // every product is compiled: nothing in between
		}
		return s, nil
	}
}

// API is the GraphQL API of the SQL products in force (nil without).
func (p *Products) API() *sqlproduct.API { return p.api.Load() }

// extend is the schema extension of the products in force.
func (p *Products) extend(prune bool) graph.Extend { return Extend(p.api.Load(), p.reg, prune) }

// SQLReload is what a reload of --sql-dir changed.
type SQLReload struct {
	// Added, Changed and Removed name products and updaters ("updater
	// add_title"); Changed are those whose statement, parameters or shape
	// changed, whose values were removed so that they are computed again.
	Added, Changed, Removed []string
	// Invalidated counts the values removed.
	Invalidated int
	// Unchanged: nothing a client or a value would see changed, and
	// nothing was swapped.
	Unchanged bool
}

// ReloadSQL reads --sql-dir again and, when every file is valid and its
// statements prepare, serves what it declares: the products and updaters
// are replaced in the registry and the GraphQL schema is swapped at once
// (requests and subscriptions under way finish on the old one); then the
// values of products whose statement changed or that were removed are
// removed from the whole cluster, so that none is served from the old
// statement once this returns. An error (naming the file and line) leaves
// everything as it was.
func (a *App) ReloadSQL(ctx context.Context) (SQLReload, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	rep, err := a.reloadSQL(ctx)
	if err != nil {
		a.sqlReloads.WithLabelValues("failed").Inc()
		a.log.Error("SQL products not reloaded: those in force keep serving", "dir", a.prods.sqlDir, "err", err)
		return rep, err
	}
	a.sqlReloads.WithLabelValues("ok").Inc()
	if rep.Unchanged {
		a.log.Info("SQL products read again: nothing changed", "dir", a.prods.sqlDir)
		return rep, nil
	}
	a.log.Info("SQL products reloaded", "dir", a.prods.sqlDir, "added", rep.Added, "changed", rep.Changed, "removed", rep.Removed, "values_removed", rep.Invalidated)
	return rep, nil
}

func (a *App) reloadSQL(ctx context.Context) (SQLReload, error) {
	var rep SQLReload
	p := a.prods
	if p.sqlDir == "" || p.pool == nil {
		return rep, errors.New("no --sql-dir to reload (SQL products embedded in the program do not change while it runs)")
	}
	decls, err := sqlproduct.Load(p.sqlDir)
	if err != nil {
		return rep, err
	}
	var api *sqlproduct.API
	if err := p.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		_ = sqlproduct.Types(ctx, c.Conn(), decls) // DescribeAPI reports what does not prepare
		api, err = sqlproduct.DescribeAPI(ctx, c.Conn(), decls)
		return err
	}); err != nil {
		return rep, err
	}
	old := p.decls.Load()
	if a, c, r := diffSQL(old, decls); len(a)+len(c)+len(r) == 0 && reflect.DeepEqual(Spec(api), Spec(p.api.Load())) {
		// Nothing a client or a value would see changed (a file touched,
		// a SIGHUP): the schema and the response cache stay.
		rep.Unchanged = true
		return rep, nil
	}
	var rules *sqlproduct.Rules
	var commit func()
	err = p.reg.Change(func(scratch *primers.Registry) error {
		if old != nil {
			for _, prod := range old.Products {
				scratch.Unregister(prod.Name)
			}
			for _, u := range old.Updaters {
				scratch.UnregisterUpdater(u.Name)
			}
		}
		var err error
		if rules, err = sqlproduct.Register(scratch, p.pool, decls, a.log); err != nil {
			return err
		}
		commit, err = a.gw.PrepareSchema(Extend(api, scratch, a.cfg.Schema == nil), scratch)
		return err
	})
	if err != nil {
		return rep, err
	}
	// The registry in force now has the new products: their declarations,
	// rules and API follow. Then the values of the old statements go, and
	// only then the schema: a request meanwhile runs on the old schema,
	// and may get a new statement's value with the old field's type, never
	// an old statement's value with the new one (nor kept: the response
	// cache keys responses by schema).
	p.decls.Store(decls)
	p.rules.Store(rules)
	p.api.Store(api)
	rep.Added, rep.Changed, rep.Removed = diffSQL(old, decls)
	var stale []string
	for _, n := range append(slices.Clone(rep.Changed), rep.Removed...) {
		if !strings.HasPrefix(n, "updater ") {
			stale = append(stale, n)
		}
	}
	// Cluster-wide: every gateway that reloads does it, so once the last
	// one has, no value of an old statement is left, and none can come
	// back (a computation started before a deletion has a lower version).
	rep.Invalidated, err = a.cache.InvalidateProducts(ctx, stale, a.backend.Scanner())
	commit()
	if err != nil {
		return rep, fmt.Errorf("reloaded, but removing the old statements' values failed (they are recomputed when they expire or change): %w", err)
	}
	a.sqlSideEffects(ctx, old, decls)
	return rep, nil
}

// sqlSideEffects installs the change triggers of new source tables (with
// --migrate; else it says to run kck migrate) and says which headers take
// effect at the next start only.
func (a *App) sqlSideEffects(ctx context.Context, old, decls *sqlproduct.Declarations) {
	var before map[string][]string
	if old != nil {
		before = old.Tables()
	}
	var missing []string
	for t, cols := range decls.Tables() {
		have := before[t]
		for _, c := range cols {
			if !slices.Contains(have, c) {
				missing = append(missing, t)
				break
			}
		}
		if _, ok := before[t]; !ok && len(cols) == 0 && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		if a.prods.migrate {
			if err := source.Migrate(ctx, a.prods.pool, decls.Tables()); err != nil {
				a.log.Error("reload: installing the change triggers of new source tables failed; run kck migrate", "tables", missing, "err", err)
			}
		} else {
			a.log.Warn("reload: new source tables or columns need their change triggers: run kck migrate (or serve with --migrate)", "tables", missing)
		}
	}
	for _, p := range decls.Products {
		var prev *sqlproduct.Product
		if old != nil {
			prev = productNamed(old, p.Name)
		}
		if (!p.Refresh.IsZero() || len(p.Warm) > 0 || p.WarmQuery != "" || !p.Domain.IsZero()) &&
			(prev == nil || !sameSchedule(prev, p)) {
			a.log.Warn("reload: kck:refresh, kck:warm, kck:warm_query and kck:domain are read at start; this product's take effect at the next start", "product", p.Name, "file", p.File)
		}
	}
}

func productNamed(d *sqlproduct.Declarations, name string) *sqlproduct.Product {
	for _, p := range d.Products {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func sameSchedule(a, b *sqlproduct.Product) bool {
	return a.Refresh == b.Refresh && slices.Equal(a.Warm, b.Warm) && a.WarmQuery == b.WarmQuery && a.Domain == b.Domain
}

// diffSQL names the products and updaters added, changed (what a value is
// made of: the statement, parameters, result shape, filter, per-user
// claims) and removed.
func diffSQL(old, cur *sqlproduct.Declarations) (added, changed, removed []string) {
	was := map[string]string{}
	if old != nil {
		for _, p := range old.Products {
			was[p.Name] = productPrint(p)
		}
		for _, u := range old.Updaters {
			was["updater "+u.Name] = updaterPrint(u)
		}
	}
	now := map[string]string{}
	for _, p := range cur.Products {
		now[p.Name] = productPrint(p)
	}
	for _, u := range cur.Updaters {
		now["updater "+u.Name] = updaterPrint(u)
	}
	for _, n := range slices.Sorted(maps.Keys(now)) {
		switch prev, ok := was[n]; {
		case !ok:
			added = append(added, n)
		case prev != now[n]:
			changed = append(changed, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[n]; !ok {
			removed = append(removed, n)
		}
	}
	return added, changed, removed
}

// productPrint is what a product's values are made of.
func productPrint(p *sqlproduct.Product) string {
	return fmt.Sprintf("%q %q %s %s %+v", p.SQL, p.Args, p.Result, p.Filter, p.Params)
}

func updaterPrint(u *sqlproduct.Updater) string {
	return fmt.Sprintf("%+v %+v %+v %+v %q %s", u.Statements, u.Insert, u.Update, u.Inputs, u.Affects, u.Key)
}

// watchSQL reloads --sql-dir when its .sql files change (checked every
// interval; 0: never) and on SIGHUP, until stop.
func (a *App) watchSQL(interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := dirPrint(a.prods.sqlDir)
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-tick:
				cur := dirPrint(a.prods.sqlDir)
				if cur == last {
					continue
				}
			}
			// Whatever the outcome: a file that failed is not tried again
			// until it changes (or SIGHUP).
			last = dirPrint(a.prods.sqlDir)
			rctx, cancelReload := context.WithTimeout(ctx, time.Minute)
			_, _ = a.ReloadSQL(rctx) // logged and counted
			cancelReload()
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// dirPrint is the names, sizes and times of the .sql files of dir: it
// changes when one is added, removed or written.
func dirPrint(dir string) string {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue // removed meanwhile: the next check sees it
		}
		fmt.Fprintf(&b, "%s %d %d\n", filepath.Base(f), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// newSQLReloads is the reload counter.
func newSQLReloads(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kck_sql_reloads_total",
		Help: "Reloads of --sql-dir, by outcome: ok (the new products serve), failed (a file was refused; those in force keep serving).",
	}, []string{"outcome"})
	return c, reg.Register(c)
}
