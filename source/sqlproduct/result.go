package sqlproduct

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// encodeRows turns rows into JSON objects keyed by column name, in column
// order. Dates are "2006-01-02", timestamps RFC 3339, numerics exact.
func encodeRows(rows pgx.Rows) ([][]byte, error) {
	defer rows.Close()
	fields := rows.FieldDescriptions()
	names := make([][]byte, len(fields))
	for i, f := range fields {
		names[i], _ = json.Marshal(f.Name)
	}
	var out [][]byte
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		obj := []byte{'{'}
		for i, v := range vals {
			if i > 0 {
				obj = append(obj, ',')
			}
			obj = append(obj, names[i]...)
			obj = append(obj, ':')
			if obj, err = appendValue(obj, v, fields[i].DataTypeOID); err != nil {
				return nil, fmt.Errorf("column %s: %w", fields[i].Name, err)
			}
		}
		out = append(out, append(obj, '}'))
	}
	return out, rows.Err()
}

func appendValue(out []byte, v any, oid uint32) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(out, "null"...), nil
	case time.Time:
		if oid == pgtype.DateOID {
			return append(out, `"`+x.Format(time.DateOnly)+`"`...), nil
		}
		return append(out, `"`+x.Format(time.RFC3339Nano)+`"`...), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(out, "null"...), nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return append(out, "null"...), nil
		}
	case pgtype.Numeric:
		if !x.Valid || x.NaN || x.InfinityModifier != pgtype.Finite {
			return append(out, "null"...), nil
		}
		b, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(out, b...), nil
	case int64:
		return strconv.AppendInt(out, x, 10), nil
	case int32:
		return strconv.AppendInt(out, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(out, int64(x), 10), nil
	case [16]byte:
		if oid == pgtype.UUIDOID {
			// Its text form, as psql shows it (json.Marshal would
			// write 16 numbers).
			return fmt.Appendf(append(out, '"'), "%x-%x-%x-%x-%x\"", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16]), nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}

// shape builds the product value from the rows' objects.
func shape(result string, objs [][]byte) (json.RawMessage, error) {
	switch result {
	case "row":
		switch len(objs) {
		case 0:
			return nil, nil
		case 1:
			return objs[0], nil
		}
		return nil, fmt.Errorf("kck:result row, but the query returned %d rows", len(objs))
	case "value":
		if len(objs) == 0 {
			return nil, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(objs[0], &m); err != nil || len(m) != 1 {
			return nil, fmt.Errorf("kck:result value needs exactly one column")
		}
		for _, v := range m {
			return v, nil
		}
	}
	n := 2
	for _, o := range objs {
		n += len(o) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, o := range objs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, o...)
	}
	return append(out, ']'), nil
}

// filter is a small JSONPath subset: $[N], $[N].col, $[*].col, $.col.
type filter struct {
	index int // -1 for *
	hasIx bool
	field string
}

func parseFilter(s string) (filter, error) {
	var f filter
	rest, ok := strings.CutPrefix(s, "$")
	if !ok {
		return f, fmt.Errorf("filter %q must start with $", s)
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return f, fmt.Errorf("filter %q: missing ]", s)
		}
		ix := rest[1:end]
		f.hasIx = true
		if ix == "*" {
			f.index = -1
		} else {
			n, err := strconv.Atoi(ix)
			if err != nil || n < 0 {
				return f, fmt.Errorf("filter %q: index must be a number or *", s)
			}
			f.index = n
		}
		rest = rest[end+1:]
	}
	if rest != "" {
		col, ok := strings.CutPrefix(rest, ".")
		if !ok || !validIdent(col) {
			return f, fmt.Errorf("filter %q: want $[N].column, $[*].column or $.column", s)
		}
		f.field = col
	}
	if !f.hasIx && f.field == "" {
		return f, fmt.Errorf("filter %q selects nothing", s)
	}
	return f, nil
}

func (f filter) apply(v json.RawMessage) (json.RawMessage, error) {
	pick := func(obj json.RawMessage) (json.RawMessage, error) {
		if f.field == "" {
			return obj, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			return nil, fmt.Errorf("filter: not an object")
		}
		val, ok := m[f.field]
		if !ok {
			return nil, fmt.Errorf("filter: no column %s", f.field)
		}
		return val, nil
	}
	if !f.hasIx {
		return pick(v)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("filter: the result is not a list")
	}
	if f.index >= 0 {
		if f.index >= len(list) {
			return nil, nil
		}
		return pick(list[f.index])
	}
	out := make([]json.RawMessage, 0, len(list))
	for _, o := range list {
		x, err := pick(o)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return json.Marshal(out)
}
