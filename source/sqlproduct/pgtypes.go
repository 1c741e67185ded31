package sqlproduct

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kck-go/kck/primers"
)

// A parameter's declared kind (int, float, string) is wider than the type
// PostgreSQL gives its placeholder: title_list(author_id int) binds an int64
// where the query compares it with an int4 column, and 2147483648 cannot be
// sent. Without a check that value reaches the driver, fails there as the
// primer's error (502, counted in kck_primer_errors_total, never
// remembered), and anyone can set off a product's error alert with it. So
// the gateway prepares every statement at start (nothing runs), learns the
// type of each placeholder, and refuses a value that type cannot hold as the
// caller's error (400 BAD_USER_INPUT), before any query: in a key when it is
// parsed, in an updater's input when it is decoded.

// Types prepares every product query and updater statement of d on conn
// (as `kck check` does; nothing runs) and records the type PostgreSQL gives
// each placeholder, which Register turns into value checks. A statement
// that does not prepare keeps no types (its values are then checked by the
// database alone) and is returned as an error naming its file, for the
// caller to log: it may depend on something made later, and `kck check`
// is the tool that reports broken SQL.
func Types(ctx context.Context, conn *pgx.Conn, d *Declarations) []error {
	var errs []error
	describe := func(file, sql string) []uint32 {
		sd, err := conn.Prepare(ctx, "", sql)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			return nil
		}
		return sd.ParamOIDs
	}
	for _, p := range d.Products {
		p.ArgTypes = describe(p.File, p.SQL)
	}
	for _, u := range d.Updaters {
		for _, sts := range [][]Statement{u.Statements, u.Insert, u.Update} {
			for i := range sts {
				sts[i].ArgTypes = describe(u.File, sts[i].SQL)
			}
		}
	}
	return errs
}

// typesOf returns the PostgreSQL types of the placeholders named name in
// statements whose placeholders are args (with types oids, when known).
func typesOf(name string, args []string, oids []uint32, into []uint32) []uint32 {
	if len(oids) != len(args) {
		return into
	}
	for i, a := range args {
		if a == name {
			into = append(into, oids[i])
		}
	}
	return into
}

// valueCheck returns a check that a value of kind k fits every type in
// oids, or nil when every value of kind k does (or nothing is known).
func valueCheck(k primers.Kind, oids []uint32) func(any) error {
	var checks []func(any) error
	for _, oid := range oids {
		if c := fitCheck(k, oid); c != nil {
			checks = append(checks, c)
		}
	}
	switch len(checks) {
	case 0:
		return nil
	case 1:
		return checks[0]
	}
	return func(v any) error {
		for _, c := range checks {
			if err := c(v); err != nil {
				return err
			}
		}
		return nil
	}
}

// fitCheck is the check of one kind against one PostgreSQL type: the
// values pgx would refuse to encode, or the server to accept, for that
// type. Nil when every value of the kind fits.
func fitCheck(k primers.Kind, oid uint32) func(any) error {
	switch k {
	case primers.Int:
		switch oid {
		case pgtype.Int2OID:
			return intIn("int2", math.MinInt16, math.MaxInt16)
		case pgtype.Int4OID:
			return intIn("int4", math.MinInt32, math.MaxInt32)
		case pgtype.OIDOID:
			return intIn("oid", 0, math.MaxUint32)
		}
	case primers.Float:
		switch oid {
		case pgtype.Int2OID:
			return floatIn("int2", math.MinInt16, math.MaxInt16)
		case pgtype.Int4OID:
			return floatIn("int4", math.MinInt32, math.MaxInt32)
		case pgtype.Int8OID:
			// The largest float64 below 2^63: float64(MaxInt64) rounds up.
			return floatIn("int8", math.MinInt64, math.Nextafter(math.MaxInt64, 0))
		case pgtype.Float4OID:
			return func(v any) error {
				if f, ok := v.(float64); ok && math.Abs(f) > math.MaxFloat32 {
					return fmt.Errorf("%g does not fit the database's float4", f)
				}
				return nil
			}
		}
	case primers.String:
		switch oid {
		case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UnknownOID:
			return validText
		}
	}
	return nil
}

func intIn(typ string, lo, hi int64) func(any) error {
	return func(v any) error {
		if n, ok := v.(int64); ok && (n < lo || n > hi) {
			return fmt.Errorf("%d does not fit the database's %s (%d to %d)", n, typ, lo, hi)
		}
		return nil
	}
}

func floatIn(typ string, lo, hi float64) func(any) error {
	return func(v any) error {
		f, ok := v.(float64)
		if !ok {
			return nil
		}
		if f != math.Trunc(f) {
			return fmt.Errorf("%g is not a whole number, which the database's %s needs", f, typ)
		}
		if f < lo || f > hi {
			return fmt.Errorf("%g does not fit the database's %s (%.0f to %.0f)", f, typ, lo, hi)
		}
		return nil
	}
}

// validText refuses what PostgreSQL's text types cannot hold: a NUL byte,
// and bytes that are not UTF-8 (the client encoding pgx uses).
func validText(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("text may not contain a NUL byte")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("text must be UTF-8")
	}
	return nil
}
