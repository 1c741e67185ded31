package dynamic

import (
	"encoding/json"
	"errors"
)

// A minimal reader of JSON text that the cache holds (a product's value,
// written by encoding/json or by the SQL products' encoder, so valid):
// it splits objects and arrays into the raw bytes of their members,
// without decoding them, so that projecting a product by a selection set
// copies bytes instead of building Go values and encoding them again.
// Malformed text is an error, never a panic.

var errJSON = errors.New("malformed JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errJSON
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errJSON
	}
	// A number or a literal: up to the next delimiter.
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\n', '\t', '\r':
			if j == i {
				return 0, errJSON
			}
			return j, nil
		}
		j++
	}
	if j == i {
		return 0, errJSON
	}
	return j, nil
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errJSON
}

// member is one key and raw value of an object.
type member struct {
	key, val []byte
}

// appendMembers appends the members of the object b to dst.
func appendMembers(dst []member, b []byte) ([]member, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, errJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, errJSON
		}
		end, err := stringEnd(b, i)
		if err != nil {
			return dst, err
		}
		key := b[i+1 : end-1]
		for _, c := range key {
			if c == '\\' { // an escaped key: decoded (never from encoding/json's field names)
				var s string
				if json.Unmarshal(b[i:end], &s) != nil {
					return dst, errJSON
				}
				key = []byte(s)
				break
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, errJSON
		}
		i = skipSpace(b, i+1)
		vend, err := valueEnd(b, i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, member{key: key, val: b[i:vend]})
		i = skipSpace(b, vend)
		if i >= len(b) {
			return dst, errJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return dst, nil
		default:
			return dst, errJSON
		}
	}
}

// appendElements appends the elements of the array b to dst.
func appendElements(dst [][]byte, b []byte) ([][]byte, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return dst, errJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return dst, nil
	}
	for {
		end, err := valueEnd(b, i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, b[i:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			return dst, errJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return dst, nil
		default:
			return dst, errJSON
		}
	}
}

// jsonKind is what a raw value is: one of the bytes " { [ t f n, or 0
// for a number (and for anything else, which the caller refuses).
func jsonKind(v []byte) byte {
	if len(v) == 0 {
		return 'n' // absent: null
	}
	switch c := v[0]; c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	}
	return 0
}

// isInteger reports whether a number's text is a whole number written
// without fraction or exponent.
func isInteger(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	i := 0
	if v[0] == '-' {
		i = 1
	}
	if i == len(v) {
		return false
	}
	for ; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// isNumber reports whether v is a JSON number (its characters: the text
// is valid JSON already).
func isNumber(v []byte) bool {
	if len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
		return false
	}
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
