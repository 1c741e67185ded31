// Package sqlproduct declares data products and updaters in SQL files, so
// that someone with SQL and no Go can add a product: one .sql file with a
// few `-- kck:` header lines, and one schema line in GraphQL.
//
// A product file:
//
//	-- kck:product title_list(author_id int)
//	-- kck:result list                  list (default), row, or value
//	-- kck:filter $[0].title            optional: $[N], $[N].col, $[*].col
//	-- kck:ttl 1h                       optional hard expiry
//	-- kck:soft_ttl 5m                  optional soft expiry
//	-- kck:freshness 2m                 optional freshness target: metrics report the age of values against it
//	-- kck:source titles author_id=author_id   a change to a titles row refreshes title_list/<its author_id>
//	-- kck:source sales *               a change to sales refreshes every cached instance
//	-- kck:after_primes author/:author_id      when author/7 is computed, refresh title_list/7
//	-- kck:after_updates add_title      after the add_title updater, refresh title_list/<its input's author_id>
//	-- kck:refresh 10m                  optional: refresh the cached instances every 10m (or cron EXPR, @hourly)
//	-- kck:warm title_list/1 title_list/2       optional: compute these keys at boot
//	-- kck:warm_query SELECT id FROM authors    optional: and one key per row of this query (columns = parameters)
//	-- kck:domain author_ids 1m         optional: keep every member listed by the product author_ids primed, checked every 1m
//	-- kck:auth public                  who may read it when tokens are verified (primers.Auth): public, or
//	-- kck:auth scope=stats:read bind author_id=sub    scopes (comma-separated) and parameters bound to claims, or
//	-- kck:auth key_by=sub              a per-user product: :sub is a hidden string parameter, the caller's claim
//	-- kck:type Title                   optional: the GraphQL type of a row (default TitleListRow; row: TitleList)
//	-- kck:field year Int!              optional: a column's GraphQL type, where PostgreSQL's description is not what you want
//	SELECT id, author_id AS "authorId", title, year FROM titles
//	WHERE author_id = :author_id ORDER BY year, id
//
// An updater file:
//
//	-- kck:updater add_title(authorId int, title string, year int)
//	-- kck:affects title_list/:authorId author_stats/:authorId
//	-- kck:auth scope=titles:write bind authorId=sub   optional: who may run it
//	INSERT INTO titles (author_id, title, year) VALUES (:authorId, :title, :year)
//	RETURNING id, author_id AS "authorId", title, year
//
// or with KCK's insert and update templates, chosen by whether the input has
// the key:
//
//	-- kck:updater save_title(id int?, authorId int, title string, year int)
//	-- kck:key id
//	-- kck:insert
//	INSERT ... RETURNING ...;
//	-- kck:update
//	UPDATE titles SET ... WHERE id = :id RETURNING ...;
//
// A product's GraphQL field (titleList(authorId: Int!)) and type are made
// from the header and the statement's result columns as PostgreSQL
// describes them (see api.go); kck:type and kck:field name or override
// them, on a product or on an updater's returned row.
//
// Parameters are :name placeholders, always bound as query arguments. Types:
// int, float, string, bool, date, timestamp; an int may carry a range
// (n int 1..100) checked before the query runs; a trailing ? marks an
// optional updater input. The header lives in SQL comments, so the file stays
// plain SQL that psql and editors understand; it needs no YAML library.
package sqlproduct

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kck-go/kck/primers"
)

// Param is a typed parameter or updater input field.
type Param struct {
	Name     string
	Kind     primers.Kind
	Min, Max *int64 // int range, when declared
	Optional bool   // updater inputs only
	// Hidden marks a kck:auth key_by claim: a string parameter after the
	// declared ones, filled from the caller's token, never a field argument.
	Hidden bool
}

// Product is a SQL product declaration: what its header says, which
// Register turns into a primers.Product (the one declaration of a product,
// Go or SQL), and its query.
type Product struct {
	File, Name   string
	Params       []Param
	Result       string // list, row, value
	Filter       string
	TTL, SoftTTL time.Duration
	Freshness    time.Duration // target; see primers.Product.FreshnessTarget
	// Sources map source tables' rows to instances: Columns has one column
	// per parameter, hidden ones included.
	Sources      []primers.Source
	AfterPrimes  []string // key templates of other products, e.g. author/:author_id
	AfterUpdates []string // updater names
	// Refresh is the schedule of periodic refresh (kck:refresh 10m, cron
	// 0 * * * *); zero when none.
	Refresh primers.Schedule
	// Warm lists keys to compute at boot; WarmQuery is SQL whose rows are
	// parameter sets of more keys to warm.
	Warm      []string
	WarmQuery string
	// Domain is the product listing this product's members and how often
	// they are checked (kck:domain KEY [SCHEDULE], default 1m).
	Domain primers.Domain
	SQL    string   // with $n placeholders
	Args   []string // parameter name of each $n
	// SQLLine is the line of the file where SQL starts.
	SQLLine int
	// ArgTypes are the PostgreSQL type OIDs of each $n, once Types has
	// prepared the query; nil before, or when it did not prepare.
	ArgTypes []uint32
	// Auth is who may read the product (kck:auth).
	Auth primers.Auth
	// Line is the line of kck:product.
	Line int
	// Type names the GraphQL type of a row (kck:type); Fields override
	// columns' GraphQL types (kck:field). See api.go.
	Type   TypeName
	Fields []FieldType
}

// TypeName is a kck:type header: a GraphQL type's name and its line.
type TypeName struct {
	Name string
	Line int
}

// FieldType is a kck:field header: the GraphQL type of one result column.
type FieldType struct {
	Column string
	Type   string // a GraphQL type reference: Int!, [String], Title
	Line   int
}

// Statement is one SQL statement of an updater, with its placeholders.
type Statement struct {
	SQL  string
	Args []string
	// Line is the line of the file where the statement starts.
	Line int
	// ArgTypes: as Product.ArgTypes.
	ArgTypes []uint32
}

// Updater is a SQL updater declaration.
type Updater struct {
	File, Name string
	Inputs     []Param
	Affects    []string // key templates, e.g. title_list/:authorId
	Key        string   // with Insert and Update: the input that picks Update
	Statements []Statement
	Insert     []Statement
	Update     []Statement
	// Auth is who may run the updater (kck:auth).
	Auth primers.Auth
	// Line, Type and Fields: as Product's, for the row the updater
	// returns (its last statement's).
	Line   int
	Type   TypeName
	Fields []FieldType
}

// Declarations are the products and updaters of a folder.
type Declarations struct {
	Products []*Product
	Updaters []*Updater
}

var headerRe = regexp.MustCompile(`^--\s*kck:(\w+)\s*(.*)$`)

// Load reads every *.sql file of dir. Errors name the file and line.
func Load(dir string) (*Declarations, error) { return LoadFS(os.DirFS(dir)) }

// LoadFS reads every *.sql file at the top of fsys.
func LoadFS(fsys fs.FS) (*Declarations, error) {
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	d := &Declarations{}
	seen := map[string]string{}
	for _, f := range files {
		raw, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		p, u, err := parseFile(filepath.Base(f), raw)
		if err != nil {
			return nil, err
		}
		name := ""
		switch {
		case p != nil:
			name = "product " + p.Name
			d.Products = append(d.Products, p)
		case u != nil:
			name = "updater " + u.Name
			d.Updaters = append(d.Updaters, u)
		default:
			continue // plain SQL, e.g. a schema
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s: %s is already declared in %s", filepath.Base(f), name, prev)
		}
		seen[name] = filepath.Base(f)
	}
	return d, nil
}

type lineError struct {
	file string
	line int
	msg  string
}

func (e *lineError) Error() string {
	if e.line <= 0 {
		return e.file + ": " + e.msg
	}
	return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
}

// parseFile parses one file; both results are nil for a file with no
// kck:product or kck:updater header.
func parseFile(file string, raw []byte) (*Product, *Updater, error) {
	var (
		p       *Product
		u       *Updater
		section = "body" // or insert, update
		body    = map[string]*strings.Builder{"body": {}, "insert": {}, "update": {}}
		// lines holds the file's line number of each line of a section's
		// body, so that an error in the SQL names its line.
		lines   = map[string][]int{}
		softTTL int // kck:soft_ttl's line
		sc      = bufio.NewScanner(bytes.NewReader(raw))
		// kck:source lines are parsed at the end, once kck:auth key_by has
		// added its hidden parameters, whatever the order of the headers.
		sources []struct {
			line int
			val  string
		}
	)
	fail := func(line int, format string, args ...any) (*Product, *Updater, error) {
		return nil, nil, &lineError{file, line, fmt.Sprintf(format, args...)}
	}
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := headerRe.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			body[section].WriteString(line)
			body[section].WriteByte('\n')
			lines[section] = append(lines[section], n)
			continue
		}
		key, val := m[1], strings.TrimSpace(m[2])
		if key != "product" && key != "updater" && p == nil && u == nil {
			return fail(n, "kck:%s before kck:product or kck:updater", key)
		}
		var err error
		switch key {
		case "product", "updater":
			if p != nil || u != nil {
				return fail(n, "one product or updater per file")
			}
			name, params, err := parseSignature(val, key == "updater")
			if err != nil {
				return fail(n, "%v", err)
			}
			if key == "product" {
				p = &Product{File: file, Name: name, Params: params, Result: "list", Line: n}
			} else {
				u = &Updater{File: file, Name: name, Inputs: params, Line: n}
			}
		case "result":
			if p == nil || (val != "list" && val != "row" && val != "value") {
				return fail(n, "kck:result is list, row or value, on a product")
			}
			p.Result = val
		case "filter":
			if p == nil {
				return fail(n, "kck:filter is for products")
			}
			if _, err := parseFilter(val); err != nil {
				return fail(n, "%v", err)
			}
			p.Filter = val
		case "ttl", "soft_ttl", "freshness":
			if p == nil {
				return fail(n, "kck:%s is for products", key)
			}
			var d time.Duration
			if d, err = time.ParseDuration(val); err != nil || d <= 0 {
				return fail(n, "kck:%s: bad duration %q", key, val)
			}
			switch key {
			case "ttl":
				p.TTL = d
			case "soft_ttl":
				p.SoftTTL, softTTL = d, n
			default:
				p.Freshness = d
			}
		case "source":
			if p == nil {
				return fail(n, "kck:source is for products")
			}
			sources = append(sources, struct {
				line int
				val  string
			}{n, val})
		case "after_primes":
			if p == nil || val == "" {
				return fail(n, "kck:after_primes takes a key template, on a product")
			}
			p.AfterPrimes = append(p.AfterPrimes, strings.Fields(val)...)
		case "after_updates":
			if p == nil || val == "" {
				return fail(n, "kck:after_updates takes updater names, on a product")
			}
			p.AfterUpdates = append(p.AfterUpdates, strings.Fields(val)...)
		case "refresh":
			if p == nil {
				return fail(n, "kck:refresh is for products")
			}
			if p.Refresh, err = primers.ParseSchedule(val); err != nil {
				return fail(n, "kck:refresh: %v", err)
			}
		case "warm":
			if p == nil || val == "" {
				return fail(n, "kck:warm takes keys of the product, on a product")
			}
			for _, k := range strings.Fields(val) {
				if name, _, _ := strings.Cut(k, "/"); name != p.Name {
					return fail(n, "kck:warm: %q is not a key of %s", k, p.Name)
				}
			}
			p.Warm = append(p.Warm, strings.Fields(val)...)
		case "warm_query":
			if p == nil || val == "" {
				return fail(n, "kck:warm_query takes a query, on a product")
			}
			if strings.Contains(val, ":") {
				return fail(n, "kck:warm_query takes no parameters")
			}
			p.WarmQuery = val
		case "domain":
			f := strings.Fields(val)
			if p == nil || len(f) == 0 {
				return fail(n, "kck:domain takes the key of a product listing the members, on a product")
			}
			every := "1m"
			if len(f) > 1 {
				every = strings.Join(f[1:], " ")
			}
			p.Domain.Key = f[0]
			if p.Domain.Schedule, err = primers.ParseSchedule(every); err != nil {
				return fail(n, "kck:domain: %v", err)
			}
		case "auth":
			var a *primers.Auth
			switch {
			case p != nil:
				a = &p.Auth
			default:
				a = &u.Auth
			}
			if err := parseAuth(val, a, p != nil); err != nil {
				return fail(n, "kck:auth: %v", err)
			}
			if p != nil {
				for _, claim := range a.KeyBy {
					if !hasParam(p.Params, claim) {
						p.Params = append(p.Params, Param{Name: claim, Kind: primers.String, Hidden: true})
					}
				}
			} else {
				for field := range a.Bind {
					if !hasParam(u.Inputs, field) {
						return fail(n, "kck:auth: bind %s: not an input of the updater", field)
					}
				}
			}
		case "type":
			var t *TypeName
			if p != nil {
				t = &p.Type
			} else {
				t = &u.Type
			}
			switch {
			case t.Name != "":
				return fail(n, "kck:type is given twice (line %d)", t.Line)
			case !graphqlName(val) || strings.HasPrefix(val, "__"):
				return fail(n, "kck:type takes a GraphQL type name (letters, digits and _, not starting with a digit or __), got %q", val)
			}
			*t = TypeName{Name: val, Line: n}
		case "field":
			var fields *[]FieldType
			if p != nil {
				fields = &p.Fields
			} else {
				fields = &u.Fields
			}
			col, typ, _ := strings.Cut(val, " ")
			typ = strings.TrimSpace(typ)
			if !graphqlName(col) || typ == "" {
				return fail(n, "kck:field takes a column and a GraphQL type: kck:field year Int!")
			}
			if err := checkTypeRef(typ); err != nil {
				return fail(n, "kck:field %s: %v", col, err)
			}
			for _, f := range *fields {
				if f.Column == col {
					return fail(n, "kck:field %s is given twice (line %d)", col, f.Line)
				}
			}
			*fields = append(*fields, FieldType{Column: col, Type: typ, Line: n})
		case "affects":
			if u == nil {
				return fail(n, "kck:affects is for updaters")
			}
			u.Affects = append(u.Affects, strings.Fields(val)...)
		case "key":
			if u == nil || !hasParam(u.Inputs, val) {
				return fail(n, "kck:key names an input of the updater")
			}
			u.Key = val
		case "insert", "update":
			if u == nil {
				return fail(n, "kck:%s is for updaters", key)
			}
			section = key
		default:
			return fail(n, "unknown header kck:%s", key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, src := range sources {
		s, err := parseSource(src.val, p.Params)
		if err != nil {
			return fail(src.line, "%v", err)
		}
		p.Sources = append(p.Sources, s)
	}
	switch {
	case p != nil:
		if p.SoftTTL > 0 && p.TTL > 0 && p.SoftTTL >= p.TTL {
			return fail(softTTL, "soft_ttl must be shorter than ttl")
		}
		raw := body["body"].String()
		text := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(raw), ";"))
		at := sourceLines{file: file, lines: lines["body"], first: strings.Count(raw[:len(raw)-len(strings.TrimLeft(raw, " \t\r\n"))], "\n")}
		sql, args, err := bindNamed(text)
		if err != nil {
			return nil, nil, at.err(text, err)
		}
		if strings.TrimSpace(stripComments(sql)) == "" {
			return fail(p.Line, "product %s has no SQL", p.Name)
		}
		for _, a := range args {
			if !hasParam(p.Params, a) {
				return nil, nil, at.errAt(text, ":"+a, fmt.Sprintf(":%s is not a parameter of %s", a, p.Name))
			}
		}
		p.SQL, p.Args, p.SQLLine = sql, args, at.line(0, text)
		return p, nil, nil
	case u != nil:
		var err error
		for _, sec := range []struct {
			name string
			into *[]Statement
		}{{"body", &u.Statements}, {"insert", &u.Insert}, {"update", &u.Update}} {
			at := sourceLines{file: file, lines: lines[sec.name]}
			if *sec.into, err = statements(at, body[sec.name].String(), u.Inputs); err != nil {
				return nil, nil, err
			}
		}
		templated := len(u.Insert) > 0 || len(u.Update) > 0
		switch {
		case templated && (u.Key == "" || len(u.Insert) == 0 || len(u.Update) == 0):
			return nil, nil, fmt.Errorf("%s: insert and update templates need kck:key, kck:insert and kck:update", file)
		case templated && len(u.Statements) > 0:
			return nil, nil, fmt.Errorf("%s: SQL before kck:insert; put it in the templates", file)
		case !templated && len(u.Statements) == 0:
			return fail(u.Line, "updater %s has no SQL", u.Name)
		}
		for _, a := range u.Affects {
			for _, ref := range templateRefs(a) {
				if !hasParam(u.Inputs, ref) {
					return nil, nil, fmt.Errorf("%s: kck:affects %s: :%s is not an input", file, a, ref)
				}
			}
		}
		return nil, u, nil
	}
	return nil, nil, nil
}

func statements(at sourceLines, body string, inputs []Param) ([]Statement, error) {
	var out []Statement
	from := 0
	for _, s := range splitStatements(body) {
		// Where the statement starts in the body, for its line.
		if i := strings.Index(body[from:], s); i >= 0 {
			from += i
		}
		at.first = strings.Count(body[:from], "\n")
		sql, args, err := bindNamed(s)
		if err != nil {
			return nil, at.err(s, err)
		}
		for _, a := range args {
			if !hasParam(inputs, a) {
				return nil, at.errAt(s, ":"+a, fmt.Sprintf(":%s is not an input of the updater", a))
			}
		}
		out = append(out, Statement{SQL: sql, Args: args, Line: at.line(0, s)})
		from += len(s)
	}
	return out, nil
}

// sourceLines maps offsets in a statement's text to the file's lines: the
// statement starts on the first-th line of a section whose lines are lines.
type sourceLines struct {
	file  string
	lines []int
	first int
}

// line is the file's line of offset off in text.
func (l sourceLines) line(off int, text string) int {
	i := l.first + strings.Count(text[:min(max(off, 0), len(text))], "\n")
	switch {
	case len(l.lines) == 0:
		return 0
	case i >= len(l.lines):
		return l.lines[len(l.lines)-1]
	}
	return l.lines[i]
}

// err names err's line when it has an offset in text.
func (l sourceLines) err(text string, err error) error {
	var oe *offsetError
	if errors.As(err, &oe) {
		return &lineError{l.file, l.line(oe.off, text), oe.msg}
	}
	return fmt.Errorf("%s: %w", l.file, err)
}

// errAt is msg on the line where needle first occurs in text.
func (l sourceLines) errAt(text, needle, msg string) error {
	return &lineError{l.file, l.line(strings.Index(text, needle), text), msg}
}

// LineOf returns the line of the file that holds the offset-th character
// (1-based, as PostgreSQL counts an error's position) of a statement that
// starts on line start: for an error PostgreSQL reports in it.
func LineOf(sql string, start, position int) int {
	if start == 0 || position <= 0 {
		return start
	}
	n := 0
	for i := range sql {
		if n++; n >= position {
			return start + strings.Count(sql[:i], "\n")
		}
	}
	return start + strings.Count(sql, "\n")
}

var sigRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$`)

// parseSignature parses name(p1 type, p2 type ...).
func parseSignature(s string, inputs bool) (string, []Param, error) {
	m := sigRe.FindStringSubmatch(s)
	if m == nil {
		if validIdent(s) {
			return s, nil, nil
		}
		return "", nil, fmt.Errorf("want name(param type, ...), got %q", s)
	}
	var params []Param
	for part := range strings.SplitSeq(m[2], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Fields(part)
		if len(f) < 2 || len(f) > 3 || !validIdent(f[0]) {
			return "", nil, fmt.Errorf("bad parameter %q: want name type", part)
		}
		p := Param{Name: f[0]}
		typ := f[1]
		if strings.HasSuffix(typ, "?") {
			if !inputs {
				return "", nil, fmt.Errorf("parameter %s: only updater inputs are optional", p.Name)
			}
			p.Optional, typ = true, strings.TrimSuffix(typ, "?")
		}
		var ok bool
		if p.Kind, ok = kinds[typ]; !ok {
			return "", nil, fmt.Errorf("parameter %s: unknown type %q (int, float, string, bool, date, timestamp)", p.Name, typ)
		}
		if len(f) == 3 {
			lo, hi, ok := strings.Cut(f[2], "..")
			a, err1 := strconv.ParseInt(lo, 10, 64)
			b, err2 := strconv.ParseInt(hi, 10, 64)
			if p.Kind != primers.Int || !ok || err1 != nil || err2 != nil || a > b {
				return "", nil, fmt.Errorf("parameter %s: a range is MIN..MAX on an int", p.Name)
			}
			p.Min, p.Max = &a, &b
		}
		if hasParam(params, p.Name) {
			return "", nil, fmt.Errorf("parameter %s declared twice", p.Name)
		}
		params = append(params, p)
	}
	return m[1], params, nil
}

var kinds = map[string]primers.Kind{
	"int": primers.Int, "float": primers.Float, "string": primers.String,
	"bool": primers.Bool, "date": primers.Date, "timestamp": primers.Timestamp,
}

func parseSource(s string, params []Param) (primers.Source, error) {
	f := strings.Fields(s)
	if len(f) == 0 || !validIdent(f[0]) {
		return primers.Source{}, fmt.Errorf("kck:source TABLE param=column ... or TABLE *")
	}
	src := primers.Source{Table: f[0]}
	if len(f) == 2 && f[1] == "*" {
		src.All = true
		return src, nil
	}
	cols := map[string]string{}
	for _, kv := range f[1:] {
		p, c, ok := strings.Cut(kv, "=")
		if !ok || !validIdent(c) || !hasParam(params, p) {
			return primers.Source{}, fmt.Errorf("kck:source %s: %q is not param=column", src.Table, kv)
		}
		cols[p] = c
	}
	for _, p := range params {
		c, ok := cols[p.Name]
		if !ok {
			return primers.Source{}, fmt.Errorf("kck:source %s: no column for parameter %s (or use *)", src.Table, p.Name)
		}
		src.Columns = append(src.Columns, c)
	}
	if len(params) == 0 {
		src.All = true
	}
	return src, nil
}

// graphqlName reports whether s is a GraphQL name: [_A-Za-z][_0-9A-Za-z]*.
func graphqlName(s string) bool { return validIdent(s) }

// checkTypeRef checks a GraphQL type reference: Name, Name!, [Type],
// [Type]!, nested; whether the name exists is for the schema to say.
func checkTypeRef(s string) error {
	t := strings.TrimSuffix(s, "!")
	if strings.HasPrefix(t, "[") {
		if !strings.HasSuffix(t, "]") {
			return fmt.Errorf("%q is not a GraphQL type (want Name, Name!, [Name], [Name!]!)", s)
		}
		return checkTypeRef(t[1 : len(t)-1])
	}
	if !graphqlName(t) {
		return fmt.Errorf("%q is not a GraphQL type (want Name, Name!, [Name], [Name!]!)", s)
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := range len(s) {
		if !isIdent(s[i]) {
			return false
		}
	}
	return true
}

func hasParam(ps []Param, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

var refRe = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// templateRefs returns the :names of a key template.
func templateRefs(t string) []string {
	var out []string
	for _, m := range refRe.FindAllStringSubmatch(t, -1) {
		out = append(out, m[1])
	}
	return out
}

// parseAuth reads one kck:auth line into a: "public", "scope=a,b",
// "bind param=claim ..." and "key_by=claim,claim" (products only), in any
// order; several lines add up.
func parseAuth(val string, a *primers.Auth, product bool) error {
	f := strings.Fields(val)
	if len(f) == 0 {
		return fmt.Errorf("want public, scope=..., bind param=claim or key_by=claim")
	}
	binding := false
	for _, w := range f {
		key, v, hasEq := strings.Cut(w, "=")
		switch {
		case w == "public":
			a.Public, binding = true, false
		case w == "bind":
			binding = true
		case hasEq && key == "scope":
			binding = false
			for sc := range strings.SplitSeq(v, ",") {
				if sc == "" {
					return fmt.Errorf("empty scope in %q", w)
				}
				a.Scopes = append(a.Scopes, sc)
			}
		case hasEq && key == "key_by":
			binding = false
			if !product {
				return fmt.Errorf("key_by is for products")
			}
			for claim := range strings.SplitSeq(v, ",") {
				if !validIdent(claim) {
					return fmt.Errorf("key_by: bad claim name %q", claim)
				}
				a.KeyBy = append(a.KeyBy, claim)
			}
		case hasEq && binding && validIdent(key) && v != "":
			if a.Bind == nil {
				a.Bind = map[string]string{}
			}
			a.Bind[key] = v
		default:
			return fmt.Errorf("%q: want public, scope=..., bind param=claim or key_by=claim", w)
		}
	}
	if a.Public && (len(a.Scopes) > 0 || len(a.Bind) > 0 || len(a.KeyBy) > 0) {
		return fmt.Errorf("public takes no scope, bind or key_by")
	}
	return nil
}
