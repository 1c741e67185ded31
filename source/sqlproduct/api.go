package sqlproduct

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kck-go/kck/primers"
)

// The GraphQL API of SQL products: what a field of a product, or a typed
// mutation of an updater, looks like, made from the header and from the
// statement's result columns as PostgreSQL describes them when it prepares
// it (nothing runs). Package graph/dynamic serves it without code
// generation; `kck check` and `kck schema` print it.
//
// Column types map to GraphQL as follows (Scalar* names the scalars):
//
//	int2, int4                       Int
//	int8, oid                        BigInt: a string of digits, as PostGraphile does: GraphQL's Int
//	                                 is 32 bits and a JavaScript number holds 53, so 2^63-1 would
//	                                 lose its last digits in a browser; kck:field n Int takes it as an Int
//	numeric, float4, float8          Float
//	text, varchar, char, name, uuid, String
//	citext, bytea (base64), enums
//	bool                             Boolean
//	date                             Date ("2006-01-02")
//	timestamptz, timestamp           Time (RFC 3339, the schema's scalar)
//	json, jsonb, anything else       JSON (the value as the product holds it)
//	arrays of those                  [Elem] (elements nullable)
//	domains                          their base type
//
// A column is non-null when it reads a table column declared NOT NULL
// (pg_attribute.attnotnull) and the statement has no outer join (which can
// make any column of its nullable side null); every other is nullable.

// The GraphQL scalars columns map to, beside GraphQL's own.
const (
	ScalarBigInt = "BigInt"
	ScalarDate   = "Date"
	ScalarTime   = "Time"
	ScalarJSON   = "JSON"
)

// APIField is one field of a row's GraphQL type: a result column.
type APIField struct {
	Name   string // the GraphQL field: the column's name in camelCase
	Column string // the column: the key of the value's JSON objects
	Type   string // a GraphQL type reference: Int!, [String], JSON
	Line   int    // the kck:field line that gave its type; 0 when derived
}

// APIObject is the GraphQL object type of one row of a statement.
type APIObject struct {
	Name   string
	Line   int // kck:type's line; 0 when the name is made from the product's
	Fields []APIField
}

// APIProduct is what GraphQL serves of a SQL product.
type APIProduct struct {
	Product *Product
	// Field is the GraphQL field, the product's name in camelCase
	// (title_list: titleList); Args its arguments, one per parameter.
	Field string
	Args  []APIArg
	// Type is the field's type: [TitleListRow!], Author, Int, [String].
	// Object is the row type it names, nil when it names a scalar (kck:result
	// value, or a filter that picks a column).
	Type   string
	Object *APIObject
}

// APIArg is an argument of a field or mutation.
type APIArg struct {
	Name string // as the field takes it: authorId
	Type string // Int!, String
}

// APIUpdater is the typed mutation of a SQL updater.
type APIUpdater struct {
	Updater *Updater
	// Field is the mutation, the updater's name in camelCase; Args its
	// input fields, by name (optional ones nullable).
	Field string
	Args  []APIArg
	// Result is the row the updater returns (its last statement's), nil
	// when it returns none.
	Result *APIObject
}

// API is the GraphQL API of a folder's products and updaters.
type API struct {
	Products []APIProduct
	Updaters []APIUpdater
}

// DescribeAPI prepares every statement of d on conn (nothing runs) and
// returns the GraphQL fields and types of its products and updaters. An
// error names the file and line: a statement that does not prepare, a
// kck:field for no column, a column GraphQL cannot name, a kck:result the
// columns do not fit. Every file's errors are returned, joined.
func DescribeAPI(ctx context.Context, conn *pgx.Conn, d *Declarations) (*API, error) {
	api := &API{}
	var errs []error
	types := newTypeInfo(conn)
	for _, p := range d.Products {
		cols, err := describe(ctx, conn, types, p.File, p.SQLLine, p.SQL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ap, err := productAPI(p, cols)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		api.Products = append(api.Products, ap)
	}
	for _, u := range d.Updaters {
		au := APIUpdater{Updater: u, Field: camelCase(u.Name)}
		for _, in := range u.Inputs {
			au.Args = append(au.Args, APIArg{Name: in.Name, Type: argType(in.Kind, !in.Optional)})
		}
		var last [][]column
		failed := false
		for _, sts := range [][]Statement{u.Statements, u.Insert, u.Update} {
			for i, st := range sts {
				cols, err := describe(ctx, conn, types, u.File, st.Line, st.SQL)
				if err != nil {
					errs = append(errs, err)
					failed = true
					continue
				}
				if i == len(sts)-1 {
					last = append(last, cols)
				}
			}
		}
		if failed {
			continue
		}
		// With insert and update templates, each returns its row: they
		// must agree for the result to have one type.
		if len(last) == 2 && !sameColumns(last[0], last[1]) {
			errs = append(errs, &lineError{u.File, u.Line, "kck:insert and kck:update return different columns; the typed mutation's result needs one row type (make their RETURNING lists agree)"})
			continue
		}
		if len(last) > 0 && len(last[0]) > 0 {
			name := pascalCase(u.Name) + "Result"
			obj, err := objectAPI(u.File, u.Line, name, u.Type, u.Fields, last[0])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			au.Result = obj
		} else if err := unusedFields(u.File, u.Fields, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		api.Updaters = append(api.Updaters, au)
	}
	return api, errors.Join(errs...)
}

// column is one result column of a statement as PostgreSQL describes it.
type column struct {
	name    string
	typ     string // GraphQL type, nullability included
	natural string // GraphQL named type the column maps to, before overrides
}

// describe prepares sql and maps its result columns to GraphQL types.
func describe(ctx context.Context, conn *pgx.Conn, types *typeInfo, file string, line int, sql string) ([]column, error) {
	sd, err := conn.Prepare(ctx, "", sql)
	if err != nil {
		msg, at := err.Error(), line
		var pg *pgconn.PgError
		if errors.As(err, &pg) {
			msg, at = pg.Message+" (SQLSTATE "+pg.Code+")", LineOf(sql, line, int(pg.Position))
		}
		return nil, &lineError{file, at, "the statement does not prepare: " + msg}
	}
	outer := outerJoin(sql)
	notNull, err := types.notNull(ctx, sd.Fields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := make([]column, len(sd.Fields))
	for i, f := range sd.Fields {
		named, list, err := types.graphql(ctx, f.DataTypeOID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		t := named
		if list {
			t = "[" + named + "]"
		}
		if notNull[i] && !outer {
			t += "!"
		}
		out[i] = column{name: f.Name, typ: t, natural: named}
		if list {
			out[i].natural = "[" + named + "]"
		}
	}
	return out, nil
}

func sameColumns(a, b []column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || strings.TrimSuffix(a[i].typ, "!") != strings.TrimSuffix(b[i].typ, "!") {
			return false
		}
	}
	return true
}

// productAPI is p's field from its columns, its kck:result and kck:filter.
func productAPI(p *Product, cols []column) (APIProduct, error) {
	ap := APIProduct{Product: p, Field: camelCase(p.Name)}
	for _, prm := range p.Params {
		if !prm.Hidden {
			ap.Args = append(ap.Args, APIArg{Name: camelCase(prm.Name), Type: argType(prm.Kind, true)})
		}
	}
	fail := func(format string, args ...any) (APIProduct, error) {
		return APIProduct{}, &lineError{p.File, p.Line, fmt.Sprintf(format, args...)}
	}
	if p.Result == "value" {
		if len(cols) != 1 {
			return fail("kck:result value needs one column; the statement returns %d", len(cols))
		}
		typ, err := overridden(p.File, cols[0], p.Fields)
		if err != nil {
			return APIProduct{}, err
		}
		if err := unusedFields(p.File, p.Fields, cols); err != nil {
			return APIProduct{}, err
		}
		if p.Type.Name != "" {
			return APIProduct{}, &lineError{p.File, p.Type.Line, "kck:type names a row's type; a kck:result value product has none"}
		}
		if p.Filter != "" {
			return fail("kck:filter applies to rows; a kck:result value product has none")
		}
		ap.Type = strings.TrimSuffix(typ, "!")
		return ap, nil
	}
	name := pascalCase(p.Name)
	if p.Result == "list" {
		name += "Row"
	}
	obj, err := objectAPI(p.File, p.SQLLine, name, p.Type, p.Fields, cols)
	if err != nil {
		return APIProduct{}, err
	}
	ap.Object, ap.Type = obj, obj.Name
	if p.Result == "list" {
		ap.Type = "[" + obj.Name + "!]"
	}
	if p.Filter == "" {
		return ap, nil
	}
	// A filter picks from the rows: its type follows what it picks.
	f, _ := parseFilter(p.Filter)
	list := p.Result == "list"
	var picked string
	if f.field != "" {
		fld := obj.field(f.field)
		if fld == nil {
			return fail("kck:filter %s: the statement returns no column %s", p.Filter, f.field)
		}
		picked = strings.TrimSuffix(fld.Type, "!")
	}
	switch {
	case f.hasIx && !list:
		return fail("kck:filter %s picks from a list; this product is kck:result %s", p.Filter, p.Result)
	case !f.hasIx && list:
		return fail("kck:filter %s picks a column of one row; this product is kck:result list (use $[0].col or $[*].col)", p.Filter)
	case f.hasIx && f.index >= 0 && picked == "": // $[0]: one row
		ap.Type = obj.Name
	case f.hasIx && f.index >= 0: // $[0].col
		ap.Type, ap.Object = picked, nil
	case f.hasIx && picked == "": // $[*]: the rows
	case f.hasIx: // $[*].col
		ap.Type, ap.Object = "["+fieldTypeOf(obj, f.field)+"]", nil
	default: // $.col
		ap.Type, ap.Object = picked, nil
	}
	return ap, nil
}

func fieldTypeOf(o *APIObject, name string) string { return o.field(name).Type }

func (o *APIObject) field(col string) *APIField {
	for i := range o.Fields {
		if o.Fields[i].Column == col || o.Fields[i].Name == col {
			return &o.Fields[i]
		}
	}
	return nil
}

// objectAPI is the row type of cols, named by kck:type or else name.
func objectAPI(file string, line int, name string, t TypeName, overrides []FieldType, cols []column) (*APIObject, error) {
	obj := &APIObject{Name: name}
	if t.Name != "" {
		obj.Name, obj.Line = t.Name, t.Line
	}
	seen := map[string]string{}
	for i, c := range cols {
		fname := camelCase(c.name)
		if !graphqlName(fname) || strings.HasPrefix(fname, "__") {
			return nil, &lineError{file, line, fmt.Sprintf("column %d (%q) has no name GraphQL can take: name it with AS", i+1, c.name)}
		}
		if prev, dup := seen[fname]; dup {
			return nil, &lineError{file, line, fmt.Sprintf("columns %q and %q are both the GraphQL field %s: rename one with AS", prev, c.name, fname)}
		}
		seen[fname] = c.name
		typ, err := overridden(file, c, overrides)
		if err != nil {
			return nil, err
		}
		f := APIField{Name: fname, Column: c.name, Type: typ}
		for _, o := range overrides {
			if o.Column == c.name || o.Column == fname {
				f.Line = o.Line
			}
		}
		obj.Fields = append(obj.Fields, f)
	}
	if len(obj.Fields) == 0 {
		return nil, &lineError{file, line, "the statement returns no columns"}
	}
	if err := unusedFields(file, overrides, cols); err != nil {
		return nil, err
	}
	return obj, nil
}

// overridden is c's GraphQL type, or the kck:field that names it.
func overridden(file string, c column, overrides []FieldType) (string, error) {
	for _, o := range overrides {
		if o.Column != c.name && o.Column != camelCase(c.name) {
			continue
		}
		if !fits(c.natural, o.Type) {
			return "", &lineError{file, o.Line, fmt.Sprintf("kck:field %s: column %s is %s, which cannot be served as %s", o.Column, c.name, c.natural, o.Type)}
		}
		return o.Type, nil
	}
	return c.typ, nil
}

// unusedFields refuses a kck:field that names no column.
func unusedFields(file string, overrides []FieldType, cols []column) error {
	for _, o := range overrides {
		found := false
		for _, c := range cols {
			found = found || o.Column == c.name || o.Column == camelCase(c.name)
		}
		if !found {
			names := make([]string, len(cols))
			for i, c := range cols {
				names[i] = c.name
			}
			return &lineError{file, o.Line, fmt.Sprintf("kck:field %s: the statement returns no column %s (it returns %s)", o.Column, o.Column, strings.Join(names, ", "))}
		}
	}
	return nil
}

// fits reports whether a column of GraphQL type natural (no !) can be
// served as want: the value's JSON is what the column gives, so a number
// can be an Int, BigInt, Float, String or ID, a string a String, ID, Date,
// Time or enum; JSON can be anything (the statement's author knows its
// shape), and anything can be JSON.
func fits(natural, want string) bool {
	want = strings.TrimSuffix(want, "!")
	if want == ScalarJSON || natural == ScalarJSON {
		return true
	}
	nl, wl := strings.HasPrefix(natural, "["), strings.HasPrefix(want, "[")
	if nl || wl {
		return nl && wl && fits(natural[1:len(natural)-1], want[1:len(want)-1])
	}
	switch natural {
	case "Int", ScalarBigInt, "Float":
		switch want {
		case "Int", ScalarBigInt, "Float", "String", "ID":
			return true
		}
		return false
	case "Boolean":
		return want == "Boolean"
	}
	// A string: a String, ID, Date, Time, or a type of the schema (an
	// enum, a custom scalar) whose existence the schema checks.
	switch want {
	case "Int", ScalarBigInt, "Float", "Boolean":
		return false
	}
	return true
}

// argType is the GraphQL type of a parameter or input of kind k.
func argType(k primers.Kind, nonNull bool) string {
	t := map[primers.Kind]string{
		primers.Int: "Int", primers.Float: "Float", primers.String: "String",
		primers.Bool: "Boolean", primers.Date: ScalarDate, primers.Timestamp: ScalarTime,
	}[k]
	if nonNull {
		t += "!"
	}
	return t
}

// camelCase is how a SQL name becomes a GraphQL one, as the compiled
// schema names fields: author_id is authorId; authorId stays.
func camelCase(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	up := false
	for i, r := range s {
		switch {
		case r == '_' && i > 0:
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// pascalCase names a type after a product: title_list is TitleList.
func pascalCase(s string) string {
	c := camelCase(s)
	if c == "" {
		return c
	}
	return strings.ToUpper(c[:1]) + c[1:]
}

// outerJoinRe finds LEFT, RIGHT or FULL [OUTER] JOIN.
var outerJoinRe = regexp.MustCompile(`(?i)\b(LEFT|RIGHT|FULL)(\s+OUTER)?\s+JOIN\b`)

// outerJoin reports whether sql has an outer join outside its quotes and
// comments: a table column's NOT NULL then says nothing of the result's.
func outerJoin(sql string) bool {
	return outerJoinRe.MatchString(unquoted(sql))
}

// unquoted is sql with its quoted text and comments blanked.
func unquoted(sql string) string {
	b := []byte(sql)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\'' || c == '"':
			for i++; i < len(b) && b[i] != c; i++ {
				b[i] = ' '
			}
		case c == '-' && i+1 < len(b) && b[i+1] == '-':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			for ; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				b[i] = ' '
			}
		}
	}
	return string(b)
}

// typeInfo maps PostgreSQL types to GraphQL ones, asking the catalogue
// about types pgx does not know (domains, enums, arrays of them).
type typeInfo struct {
	conn  *pgx.Conn
	known *pgtype.Map
	pg    map[uint32]pgType
}

type pgType struct {
	name       string
	kind       byte // pg_type.typtype: b base, d domain, e enum, c composite, ...
	elem, base uint32
	array      bool
}

func newTypeInfo(conn *pgx.Conn) *typeInfo {
	return &typeInfo{conn: conn, known: pgtype.NewMap(), pg: map[uint32]pgType{}}
}

// scalarOf maps the types GraphQL has a scalar for.
var scalarOf = map[uint32]string{
	pgtype.Int2OID: "Int", pgtype.Int4OID: "Int",
	pgtype.Int8OID: ScalarBigInt, pgtype.OIDOID: ScalarBigInt,
	pgtype.NumericOID: "Float", pgtype.Float4OID: "Float", pgtype.Float8OID: "Float",
	pgtype.TextOID: "String", pgtype.VarcharOID: "String", pgtype.BPCharOID: "String",
	pgtype.NameOID: "String", pgtype.QCharOID: "String", pgtype.UUIDOID: "String", pgtype.ByteaOID: "String",
	pgtype.BoolOID:        "Boolean",
	pgtype.DateOID:        ScalarDate,
	pgtype.TimestamptzOID: ScalarTime, pgtype.TimestampOID: ScalarTime,
	pgtype.JSONOID: ScalarJSON, pgtype.JSONBOID: ScalarJSON,
}

// graphql returns the GraphQL named type of a column of type oid, and
// whether the column is a list of it.
func (ti *typeInfo) graphql(ctx context.Context, oid uint32) (string, bool, error) {
	if s, ok := scalarOf[oid]; ok {
		return s, false, nil
	}
	if t, ok := ti.known.TypeForOID(oid); ok {
		if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			if s, ok := scalarOf[ac.ElementType.OID]; ok {
				return s, true, nil
			}
		}
	}
	// Domains, enums, extensions' types (citext), arrays of them.
	t, err := ti.lookup(ctx, oid)
	if err != nil {
		return "", false, err
	}
	switch {
	case t.array:
		s, list, err := ti.graphql(ctx, t.elem)
		if err != nil || list {
			return ScalarJSON, false, err // an array of arrays: JSON
		}
		return s, true, nil
	case t.kind == 'd':
		return ti.graphql(ctx, t.base)
	case t.kind == 'e', t.name == "citext":
		return "String", false, nil
	}
	return ScalarJSON, false, nil
}

func (ti *typeInfo) lookup(ctx context.Context, oid uint32) (pgType, error) {
	if t, ok := ti.pg[oid]; ok {
		return t, nil
	}
	var t pgType
	var kind string
	err := ti.conn.QueryRow(ctx, `SELECT typname, typtype, typelem, typbasetype, typcategory = 'A'
		FROM pg_catalog.pg_type WHERE oid = $1`, oid).Scan(&t.name, &kind, &t.elem, &t.base, &t.array)
	if errors.Is(err, pgx.ErrNoRows) {
		return pgType{}, nil // unknown: JSON
	}
	if err != nil {
		return pgType{}, fmt.Errorf("reading the type of a column (oid %d): %w", oid, err)
	}
	if kind != "" {
		t.kind = kind[0]
	}
	ti.pg[oid] = t
	return t, nil
}

// notNull says, for each field, whether it reads a table column declared
// NOT NULL.
func (ti *typeInfo) notNull(ctx context.Context, fields []pgconn.FieldDescription) ([]bool, error) {
	out := make([]bool, len(fields))
	var rels []uint32
	var nums []int16
	for _, f := range fields {
		if f.TableOID != 0 && f.TableAttributeNumber > 0 {
			rels = append(rels, f.TableOID)
			nums = append(nums, int16(f.TableAttributeNumber))
		}
	}
	if len(rels) == 0 {
		return out, nil
	}
	rows, err := ti.conn.Query(ctx, `SELECT a.attrelid, a.attnum FROM pg_catalog.pg_attribute a
		JOIN unnest($1::oid[], $2::int2[]) AS c(rel, num) ON a.attrelid = c.rel AND a.attnum = c.num
		WHERE a.attnotnull`, rels, nums)
	if err != nil {
		return nil, fmt.Errorf("reading which columns are NOT NULL: %w", err)
	}
	type col struct {
		rel uint32
		num int16
	}
	nn := map[col]bool{}
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.rel, &c.num); err != nil {
			rows.Close()
			return nil, err
		}
		nn[c] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading which columns are NOT NULL: %w", err)
	}
	for i, f := range fields {
		out[i] = nn[col{f.TableOID, int16(f.TableAttributeNumber)}]
	}
	return out, nil
}
