package sqlproduct

import (
	"fmt"
	"strings"
)

// bindNamed rewrites :name placeholders to $1, $2, ... and returns the
// names in order of their numbers. Text in quotes, comments and "::" casts
// is left alone. Values are always bound as query arguments, never spliced.
func bindNamed(sql string) (string, []string, error) {
	var (
		out   strings.Builder
		names []string
		index = map[string]int{}
	)
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) {
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(sql) {
				return "", nil, &offsetError{i, fmt.Sprintf("unterminated %c quote", c)}
			}
			out.WriteString(sql[i : j+1])
			i = j + 1
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			out.WriteString(sql[i : i+j])
			i += j
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				return "", nil, &offsetError{i, "unterminated comment"}
			}
			out.WriteString(sql[i : i+2+j+2])
			i += 2 + j + 2
		case c == ':' && i+1 < len(sql) && sql[i+1] == ':':
			out.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(sql) && isIdentStart(sql[i+1]):
			j := i + 1
			for j < len(sql) && isIdent(sql[j]) {
				j++
			}
			name := sql[i+1 : j]
			n, ok := index[name]
			if !ok {
				names = append(names, name)
				n = len(names)
				index[name] = n
			}
			fmt.Fprintf(&out, "$%d", n)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), names, nil
}

// offsetError is an error at a byte offset of the text parsed.
type offsetError struct {
	off int
	msg string
}

func (e *offsetError) Error() string { return e.msg }

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }

// splitStatements splits a script on semicolons that end a statement,
// outside quotes and comments. Empty statements are dropped.
func splitStatements(sql string) []string {
	var (
		stmts []string
		start int
	)
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\'' || c == '"':
			for i++; i < len(sql) && sql[i] != c; i++ {
			}
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == ';':
			stmts = append(stmts, sql[start:i])
			start = i + 1
		}
	}
	stmts = append(stmts, sql[start:])
	out := stmts[:0]
	for _, s := range stmts {
		if strings.TrimSpace(stripComments(s)) != "" {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
