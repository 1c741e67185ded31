// Package scriptrun runs the project's service scripts (scripts/...), which
// install and start what tests need: PostgreSQL, Cassandra, chromium. The
// test helpers (pgtest, cassandratest, browsertest) share it.
package scriptrun

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Output runs the script at rel (e.g. "scripts/postgres/up.sh") under the
// repository's root with args and returns its standard output, trimmed. A
// failure's error names the script and carries what it wrote to stderr.
func Output(rel string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(Root(), rel), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &Error{Script: rel, Err: err, Stderr: stderr.String()}
	}
	return strings.TrimSpace(string(out)), nil
}

// Error is a script that failed.
type Error struct {
	Script string
	Err    error
	Stderr string
}

func (e *Error) Error() string { return e.Script + ": " + e.Err.Error() + "\n" + e.Stderr }

func (e *Error) Unwrap() error { return e.Err }
