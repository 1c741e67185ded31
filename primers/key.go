package primers

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the type of a product parameter.
type Kind uint8

// The parameter kinds. Their Go representations in Key.Args are int64, float64,
// string, bool, time.Time (a date: midnight UTC) and time.Time (a timestamp, UTC).
const (
	Int Kind = iota + 1
	Float
	String
	Bool
	Date
	Timestamp
)

func (k Kind) String() string {
	switch k {
	case Int:
		return "int"
	case Float:
		return "float"
	case String:
		return "string"
	case Bool:
		return "bool"
	case Date:
		return "date"
	case Timestamp:
		return "timestamp"
	case timeKind:
		return "date or timestamp"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Param is one declared parameter of a product.
type Param struct {
	Name string
	Kind Kind
	// Range, on an Int parameter, bounds its values: a key outside it is
	// refused with ErrBadParams when it is parsed or built, before any
	// primer runs. Nil means any int64.
	Range *Range
	// Check, when set, is called with each parsed or built value of the
	// parameter (after Range): an error refuses the key with ErrBadParams,
	// before any primer runs, and is shown to the client. SQL products set
	// it from the type PostgreSQL gives the parameter (an int bound to an
	// int4 column must fit 32 bits), so that a value the database cannot
	// take is the caller's error, not the primer's. It must be cheap and
	// safe for concurrent use: it runs on every key parse.
	Check func(v any) error
}

// Range is an inclusive range of an Int parameter.
type Range struct{ Min, Max int64 }

// IntRange returns the range min..max, for Param.Range.
func IntRange(min, max int64) *Range { return &Range{Min: min, Max: max} }

// check reports whether v is in range; a nil range holds every value.
func (r *Range) check(v int64) error {
	if r == nil || (r.Min <= v && v <= r.Max) {
		return nil
	}
	return fmt.Errorf("must be between %d and %d, got %d", r.Min, r.Max, v)
}

// MaxKeyBytes bounds the length of a key string. A key is stored, logged and
// sent to clients; a longer one is refused with ErrMalformedKey before
// anything is read or written, so that clients cannot grow the store, the
// logs or the in-process tier with huge keys.
const MaxKeyBytes = 1024

// shownKeyBytes is how much of a refused key an error repeats.
const shownKeyBytes = 64

// Sentinels for key and parameter errors. Every error from ParseKey and
// Registry.Key wraps exactly one of them, so the edge can map it to a client
// error with errors.Is.
var (
	ErrMalformedKey   = errors.New("malformed key")
	ErrUnknownProduct = errors.New("unknown product")
	ErrBadParams      = errors.New("bad parameters")
)

// KeyError says which key was rejected and why.
type KeyError struct {
	Key    string
	Reason string
	Err    error // one of the sentinels above
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("%v %q: %s", e.Err, shortKey(e.Key), e.Reason)
}

// shortKey returns k, or for a long one its start and its length, so that an
// error never echoes a huge key whole.
func shortKey(k string) string {
	if len(k) <= shownKeyBytes+16 {
		return k
	}
	cut := shownKeyBytes
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return k[:cut] + "... (" + strconv.Itoa(len(k)) + " bytes)"
}

func (e *KeyError) Unwrap() error { return e.Err }

// Key identifies one instance of a data product: its name and typed arguments.
// Its string form, name/arg1/arg2, is canonical: parsing any accepted spelling
// and formatting it again gives one string per instance, so the cache never
// holds the same instance under two keys.
type Key struct {
	Name string
	Args []any

	params []Param // set by the Registry; tells dates from timestamps
}

const dateLayout = "2006-01-02"

// String formats the key canonically, percent-escaping '/' and '%' in values.
func (k Key) String() string {
	if len(k.Args) == 0 {
		return k.Name
	}
	var b strings.Builder
	b.Grow(len(k.Name) + 12*len(k.Args))
	b.WriteString(k.Name)
	for i, a := range k.Args {
		b.WriteByte('/')
		kind := Kind(0)
		if i < len(k.params) {
			kind = k.params[i].Kind
		}
		writeEscaped(&b, formatArg(kind, a))
	}
	return b.String()
}

// Checked reports whether a Registry built k (Key or ParseKey), so that its
// arguments are of its product's kinds and in range: a cache may run the
// product's primer on it without parsing its string again.
func (k Key) Checked() bool { return k.params != nil || len(k.Args) == 0 }

// Segment returns argument i as its key segment spells it, unescaped: the
// form bindings compare with a claim's value.
func (k Key) Segment(i int) string {
	kind := Kind(0)
	if i < len(k.params) {
		kind = k.params[i].Kind
	}
	return formatArg(kind, k.Args[i])
}

// Int returns argument i as an int64; it panics if that argument is not an Int,
// which a registered primer's declaration rules out.
func (k Key) Int(i int) int64 { return k.Args[i].(int64) }

// Float returns argument i as a float64.
func (k Key) Float(i int) float64 { return k.Args[i].(float64) }

// Str returns argument i as a string.
func (k Key) Str(i int) string { return k.Args[i].(string) }

// Bool returns argument i as a bool.
func (k Key) Bool(i int) bool { return k.Args[i].(bool) }

// Time returns argument i (a Date or Timestamp) as a time.Time in UTC.
func (k Key) Time(i int) time.Time { return k.Args[i].(time.Time) }

func formatArg(kind Kind, a any) string {
	switch v := a.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if kind == Date {
			return v.UTC().Format(dateLayout)
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(a)
}

func writeEscaped(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/':
			b.WriteString("%2F")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
}

// splitKey splits a key into its name and unescaped segments.
func splitKey(s string) (name string, segs []string, err error) {
	if s == "" {
		return "", nil, &KeyError{Key: s, Reason: "empty key", Err: ErrMalformedKey}
	}
	if len(s) > MaxKeyBytes {
		return "", nil, &KeyError{Key: s, Reason: fmt.Sprintf("longer than %d bytes", MaxKeyBytes), Err: ErrMalformedKey}
	}
	parts := strings.Split(s, "/")
	name = parts[0]
	if !validName(name) {
		return "", nil, &KeyError{Key: s, Reason: "product name must match [A-Za-z_][A-Za-z0-9_]*", Err: ErrMalformedKey}
	}
	segs = parts[1:]
	for i, p := range segs {
		if strings.IndexByte(p, '%') < 0 {
			continue
		}
		u, ok := unescape(p)
		if !ok {
			return "", nil, &KeyError{Key: s, Reason: fmt.Sprintf("segment %d: bad percent-escape", i+1), Err: ErrMalformedKey}
		}
		segs[i] = u
	}
	return name, segs, nil
}

func unescape(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func validName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// parseArg converts one unescaped segment to the Go value of kind k.
func parseArg(k Kind, s string) (any, error) {
	switch k {
	case Int:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, errors.New("not an integer")
		}
		return v, nil
	case Float:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("not a finite number")
		}
		return canonicalFloat(v), nil
	case String:
		return s, nil
	case Bool:
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, errors.New("not true or false")
	case Date:
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return nil, errors.New("not a date (YYYY-MM-DD)")
		}
		return t, nil
	case Timestamp:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, errors.New("not an RFC 3339 timestamp")
		}
		// An offset can move a valid local time out of the years a key can
		// spell; its UTC form would not parse again.
		if t = t.UTC(); !keyYear(t) {
			return nil, errors.New("timestamp out of range (years 0000 to 9999 in UTC)")
		}
		return t, nil
	}
	return nil, fmt.Errorf("unknown kind %v", k)
}

// canonicalFloat maps -0 to 0: they compare equal, so they must not make two
// keys for one instance.
func canonicalFloat(v float64) float64 {
	if v == 0 {
		return 0
	}
	return v
}

// keyYear reports whether t's year has the four digits that the date and
// RFC 3339 layouts parse, so that a formatted key parses again.
func keyYear(t time.Time) bool {
	y := t.Year()
	return 0 <= y && y <= 9999
}

// convertArg accepts a Go value for a parameter of kind k from code (GraphQL
// arguments, typed primers) and returns its canonical Key.Args form.
func convertArg(k Kind, v any) (any, bool) {
	switch k {
	case Int:
		switch n := v.(type) {
		case int:
			return int64(n), true
		case int32:
			return int64(n), true
		case int64:
			return n, true
		}
	case Float:
		var f float64
		switch n := v.(type) {
		case float64:
			f = n
		case float32:
			f = float64(n)
		case int:
			f = float64(n)
		case int64:
			f = float64(n)
		default:
			return nil, false
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		return canonicalFloat(f), true
	case String:
		s, ok := v.(string)
		return s, ok
	case Bool:
		b, ok := v.(bool)
		return b, ok
	case Date:
		if t, ok := v.(time.Time); ok {
			y, m, d := t.Date()
			t = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
			return t, keyYear(t)
		}
	case Timestamp:
		if t, ok := v.(time.Time); ok {
			t = t.UTC()
			return t, keyYear(t)
		}
	}
	return nil, false
}
