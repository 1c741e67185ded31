package sqlproduct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/source"
)

// DB is what products and updaters need of a pgx pool.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Register declares the products and updaters of d in reg, running their
// SQL on db: each product's header becomes its primers.Product, warming,
// refresh and domain included, which the scheduler reads from reg; a
// kck:warm_query runs on db when the scheduler warms. It fails on a name taken by another product, a rule that names
// an unknown product or updater, or after_primes rules that form a cycle.
// With the placeholders' types known (Types, called before), values they
// cannot take are refused before any query. log receives what an updater's
// refused input broke in the database (a constraint, a table), which its
// client is not told; nil: slog.Default().
func Register(reg *primers.Registry, db DB, d *Declarations, log *slog.Logger) (*Rules, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, p := range d.Products {
		decl := primers.Product{
			Name: p.Name, Primer: &primer{db: db, p: p},
			TTL: p.TTL, SoftTTL: p.SoftTTL, FreshnessTarget: p.Freshness,
			Refresh: p.Refresh, Warm: p.Warm, Domain: p.Domain,
			Sources: p.Sources, AfterPrimes: p.AfterPrimes, AfterUpdates: p.AfterUpdates,
			Auth: p.Auth,
		}
		if p.WarmQuery != "" {
			decl.WarmKeys = func(ctx context.Context) ([]string, error) { return warmKeys(ctx, db, reg, p) }
		}
		if p.Filter != "" {
			decl.Primer.(*primer).filter, _ = parseFilter(p.Filter)
		}
		for _, prm := range p.Params {
			if prm.Hidden { // key_by claims: the registry appends them
				continue
			}
			dp := primers.Param{Name: prm.Name, Kind: prm.Kind}
			if prm.Min != nil {
				// Checked when the key is parsed, before the query runs.
				dp.Range = primers.IntRange(*prm.Min, *prm.Max)
			}
			// And what the query's placeholders can take (see Types).
			dp.Check = valueCheck(prm.Kind, typesOf(prm.Name, p.Args, p.ArgTypes, nil))
			decl.Params = append(decl.Params, dp)
		}
		if err := reg.Register(decl); err != nil {
			return nil, fmt.Errorf("%s: %w", p.File, err)
		}
	}
	rules := &Rules{reg: reg, afterPrimes: map[string][]afterPrime{}}
	for _, u := range d.Updaters {
		up := &updater{db: db, u: u, reg: reg, log: log, checks: map[string]func(any) error{}}
		for _, in := range u.Inputs {
			var oids []uint32
			for _, sts := range [][]Statement{u.Statements, u.Insert, u.Update} {
				for _, st := range sts {
					oids = typesOf(in.Name, st.Args, st.ArgTypes, oids)
				}
			}
			if c := valueCheck(in.Kind, oids); c != nil {
				up.checks[in.Name] = c
			}
		}
		for _, p := range d.Products {
			for _, name := range p.AfterUpdates {
				if name != u.Name {
					continue
				}
				tmpl := p.Name
				for _, prm := range p.Params {
					if !hasParam(u.Inputs, prm.Name) {
						return nil, fmt.Errorf("%s: after_updates %s: the updater has no input %s for parameter %s", p.File, name, prm.Name, prm.Name)
					}
					tmpl += "/:" + prm.Name
				}
				up.extra = append(up.extra, tmpl)
			}
		}
		if err := reg.RegisterUpdaterAuth(u.Name, up, u.Auth); err != nil {
			return nil, fmt.Errorf("%s: %w", u.File, err)
		}
	}
	for _, p := range d.Products {
		for _, name := range p.AfterUpdates {
			if _, err := reg.Updater(name); err != nil {
				return nil, fmt.Errorf("%s: after_updates: %w", p.File, err)
			}
		}
		for _, t := range p.AfterPrimes {
			trigger, _, _ := strings.Cut(t, "/")
			tp := reg.Product(trigger)
			if tp == nil {
				return nil, fmt.Errorf("%s: after_primes %s: no product %s", p.File, t, trigger)
			}
			ap := afterPrime{target: p.Name, trigger: t}
			for _, prm := range p.Params {
				ix := -1
				for i, tprm := range tp.Params {
					if tprm.Name == prm.Name {
						ix = i
					}
				}
				if ix < 0 {
					return nil, fmt.Errorf("%s: after_primes %s: product %s has no parameter %s", p.File, t, trigger, prm.Name)
				}
				ap.from = append(ap.from, ix)
			}
			rules.afterPrimes[trigger] = append(rules.afterPrimes[trigger], ap)
		}
	}
	if err := rules.checkCycles(); err != nil {
		return nil, err
	}
	return rules, nil
}

// Rules are the after_primes rules: when a trigger product is computed, its
// dependents are refreshed.
type Rules struct {
	reg         *primers.Registry
	afterPrimes map[string][]afterPrime // by trigger product
}

type afterPrime struct {
	target, trigger string
	from            []int // index of the trigger key's arg for each target param
}

// AfterPrime returns the keys to refresh now that key was computed.
func (r *Rules) AfterPrime(key string) []string {
	if r == nil {
		return nil
	}
	name, _ := primers.SplitName(key)
	aps := r.afterPrimes[name]
	if len(aps) == 0 {
		return nil
	}
	k, err := r.reg.ParseKey(key)
	if err != nil {
		return nil
	}
	var out []string
	for _, ap := range aps {
		args := make([]any, len(ap.from))
		for i, ix := range ap.from {
			args[i] = k.Args[ix]
		}
		if tk, err := r.reg.Key(ap.target, args...); err == nil {
			out = append(out, tk.String())
		}
	}
	return out
}

func (r *Rules) checkCycles() error {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string) error
	visit = func(p string, path []string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("after_primes rules form a cycle: %s", strings.Join(append(path, p), " -> "))
		case 2:
			return nil
		}
		state[p] = 1
		for _, ap := range r.afterPrimes[p] {
			if err := visit(ap.target, append(path, p)); err != nil {
				return err
			}
		}
		state[p] = 2
		return nil
	}
	for p := range r.afterPrimes {
		if err := visit(p, nil); err != nil {
			return err
		}
	}
	return nil
}

type primer struct {
	db     DB
	p      *Product
	filter filter
}

func (pr *primer) Prime(ctx context.Context, k primers.Key) (any, error) {
	if len(k.Args) != len(pr.p.Params) {
		// A key parsed before a reload changed the parameters.
		return nil, fmt.Errorf("%w: %s takes %d parameters, the key has %d", primers.ErrBadParams, pr.p.Name, len(pr.p.Params), len(k.Args))
	}
	byName := map[string]any{}
	for i, prm := range pr.p.Params {
		v := k.Args[i]
		if n, ok := v.(int64); ok && prm.Min != nil && (n < *prm.Min || n > *prm.Max) {
			return nil, fmt.Errorf("%w: %s must be between %d and %d, got %d", primers.ErrBadInput, prm.Name, *prm.Min, *prm.Max, n)
		}
		byName[prm.Name] = v
	}
	args := make([]any, len(pr.p.Args))
	for i, name := range pr.p.Args {
		args[i] = byName[name]
	}
	objs, err := pr.query(ctx, args)
	if err != nil && lostConnection(err) {
		// A pooled connection that the server dropped (a restart, a
		// terminated backend) fails once; the pool has discarded it, and a
		// read is safe to run again on another.
		objs, err = pr.query(ctx, args)
	}
	if bad := inputRefusal(err); bad != "" {
		// A value the placeholder's type took but the query could not use
		// (a text too long for a cast, a date out of a function's range):
		// the key's fault, remembered like any refused key.
		return nil, fmt.Errorf("%w: %s: %s", primers.ErrBadInput, k, bad)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pr.p.File, source.Unavailable(err))
	}
	v, err := shape(pr.p.Result, objs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pr.p.File, err)
	}
	if v != nil && pr.p.Filter != "" {
		if v, err = pr.filter.apply(v); err != nil {
			return nil, fmt.Errorf("%s: %w", pr.p.File, err)
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s returned no rows", primers.ErrNoData, k)
	}
	return v, nil
}

func (pr *primer) query(ctx context.Context, args []any) ([][]byte, error) {
	rows, err := pr.db.Query(ctx, pr.p.SQL, args...)
	if err != nil {
		return nil, err
	}
	return encodeRows(rows)
}

func lostConnection(err error) bool {
	return errors.Is(source.Unavailable(err), primers.ErrUnavailable)
}

type updater struct {
	db     DB
	u      *Updater
	reg    *primers.Registry
	log    *slog.Logger
	checks map[string]func(any) error // by input: what its placeholders' types take
	extra  []string                   // after_updates templates of products
}

func (up *updater) Update(ctx context.Context, input json.RawMessage) (primers.UpdateResult, error) {
	in, err := up.decode(input)
	if err != nil {
		return primers.UpdateResult{}, err
	}
	stmts := up.u.Statements
	if up.u.Key != "" {
		stmts = up.u.Insert
		if v, ok := in[up.u.Key]; ok && v != nil {
			stmts = up.u.Update
		}
	}
	var last [][]byte
	tx, err := up.db.Begin(ctx)
	if err != nil && lostConnection(err) {
		// As for a primer: nothing was written yet, so a pooled
		// connection the server dropped is worth one more try.
		tx, err = up.db.Begin(ctx)
	}
	if err != nil {
		return primers.UpdateResult{}, up.classify(err)
	}
	// Rolled back unless committed: a statement that fails, or a
	// connection lost mid-way, leaves nothing of the update written.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx) // after Commit, a no-op
	}()
	for _, st := range stmts {
		args := make([]any, len(st.Args))
		for i, a := range st.Args {
			args[i] = in[a]
		}
		rows, err := tx.Query(ctx, st.SQL, args...)
		if err == nil {
			last, err = encodeRows(rows)
		}
		if err != nil {
			return primers.UpdateResult{}, up.classify(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return primers.UpdateResult{}, up.classify(err)
	}
	res := primers.UpdateResult{}
	switch len(last) {
	case 0:
	case 1:
		res.Result = json.RawMessage(last[0])
	default:
		res.Result, _ = shape("list", last)
	}
	seen := map[string]bool{}
	for _, t := range append(append([]string(nil), up.u.Affects...), up.extra...) {
		key, err := up.render(t, in)
		if err != nil {
			return res, fmt.Errorf("%s: affects %s: %w", up.u.File, t, err)
		}
		if key != "" && !seen[key] {
			seen[key] = true
			res.Affected = append(res.Affected, key)
		}
	}
	return res, nil
}

// classify turns data and constraint errors into bad input and a lost or
// refused connection into primers.ErrUnavailable. The client's message
// says what kind of rule the input broke, never which constraint, table or
// column (the schema is not the client's business, and a message may quote
// other rows' values); those go to the log, at info: the input was the
// client's mistake, not the gateway's. The statements run in one
// transaction, so after either nothing of the update is written (a
// connection lost while COMMIT was on its way is the one case whose outcome
// the client cannot know, as with any database).
func (up *updater) classify(err error) error {
	if bad := inputRefusal(err); bad != "" {
		var pg *pgconn.PgError
		errors.As(err, &pg)
		up.log.Info("updater input refused by the database", "updater", up.u.Name, "file", up.u.File,
			"sqlstate", pg.Code, "constraint", pg.ConstraintName, "table", pg.TableName, "column", pg.ColumnName, "err", pg.Message)
		return fmt.Errorf("%w: %s: %s", primers.ErrBadInput, up.u.Name, bad)
	}
	return fmt.Errorf("%s: %w", up.u.File, source.Unavailable(err))
}

// inputRefusal is what a client is told of a data or constraint error
// (SQLSTATE classes 22 and 23), with its code; "" for any other error.
func inputRefusal(err error) string {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || (!strings.HasPrefix(pg.Code, "22") && !strings.HasPrefix(pg.Code, "23")) {
		return ""
	}
	what := "the database refused a value"
	switch pg.Code {
	case "23505":
		what = "a row with these values exists already"
	case "23503":
		what = "a value refers to a row that does not exist"
	case "23502":
		what = "a required value is missing"
	case "23514", "23P01":
		what = "a value breaks a rule of the data (out of range, empty or too long)"
	case "22001":
		what = "a value is too long"
	case "22003":
		what = "a number is out of range"
	case "22P02", "22007", "22008":
		what = "a value is malformed or out of range for its type"
	case "22021":
		what = "a text value is not valid UTF-8"
	case "22012":
		what = "a value leads to a division by zero"
	}
	return what + " (SQLSTATE " + pg.Code + ")"
}

// decode checks the input against the declared inputs: no unknown fields,
// every required one present, each of its type.
func (up *updater) decode(input json.RawMessage) (map[string]any, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(input))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: %s input must be a JSON object", primers.ErrBadInput, up.u.Name)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s input: trailing data", primers.ErrBadInput, up.u.Name)
	}
	for name := range raw {
		if !hasParam(up.u.Inputs, name) {
			return nil, fmt.Errorf("%w: %s has no input %q", primers.ErrBadInput, up.u.Name, name)
		}
	}
	out := map[string]any{}
	for _, p := range up.u.Inputs {
		r, ok := raw[p.Name]
		if !ok || string(r) == "null" {
			if !p.Optional {
				return nil, fmt.Errorf("%w: %s needs %s", primers.ErrBadInput, up.u.Name, p.Name)
			}
			out[p.Name] = nil
			continue
		}
		v, err := decodeValue(p, r)
		if c := up.checks[p.Name]; err == nil && c != nil {
			err = c(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s: %v", primers.ErrBadInput, up.u.Name, p.Name, err)
		}
		out[p.Name] = v
	}
	return out, nil
}

func decodeValue(p Param, r json.RawMessage) (any, error) {
	switch p.Kind {
	case primers.Int:
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil || r[0] == '"' {
			return nil, errors.New("want an integer")
		}
		v, err := n.Int64()
		if err != nil {
			return nil, errors.New("want an integer")
		}
		if p.Min != nil && (v < *p.Min || v > *p.Max) {
			return nil, fmt.Errorf("must be between %d and %d", *p.Min, *p.Max)
		}
		return v, nil
	case primers.Float:
		var f float64
		if err := json.Unmarshal(r, &f); err != nil || r[0] == '"' {
			return nil, errors.New("want a number")
		}
		return f, nil
	case primers.String:
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, errors.New("want a string")
		}
		return s, nil
	case primers.Bool:
		var b bool
		if err := json.Unmarshal(r, &b); err != nil {
			return nil, errors.New("want true or false")
		}
		return b, nil
	case primers.Date, primers.Timestamp:
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, errors.New("want a string")
		}
		layout := time.RFC3339Nano
		if p.Kind == primers.Date {
			layout = time.DateOnly
		}
		t, err := time.Parse(layout, s)
		if err != nil {
			return nil, fmt.Errorf("want %s", layout)
		}
		return t, nil
	}
	return nil, errors.New("unsupported type")
}

// render fills a key template (title_list/:authorId) from the input and
// returns the canonical key.
func (up *updater) render(t string, in map[string]any) (string, error) {
	segs := strings.Split(t, "/")
	for i := 1; i < len(segs); i++ {
		ref, ok := strings.CutPrefix(segs[i], ":")
		if !ok {
			continue
		}
		v := in[ref]
		switch x := v.(type) {
		case nil:
			return "", nil // optional input absent: no key
		case int64:
			segs[i] = strconv.FormatInt(x, 10)
		case float64:
			segs[i] = strconv.FormatFloat(x, 'g', -1, 64)
		case bool:
			segs[i] = strconv.FormatBool(x)
		case time.Time:
			segs[i] = x.Format(time.RFC3339Nano)
		case string:
			segs[i] = url.PathEscape(x)
		}
	}
	k, err := up.reg.ParseKey(strings.Join(segs, "/"))
	if err != nil {
		return "", err
	}
	return k.String(), nil
}
