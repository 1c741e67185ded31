// Package scriptrun runs the project's service scripts (scripts/...), which
// install and start what tests need: PostgreSQL, Cassandra, chromium, once
// per test binary (Service). The test helpers (pgtest, cassandratest,
// browsertest) share it.
package scriptrun

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
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

// Service is a service that a test binary finds running, or starts once
// with its script and leaves running for the next one. Its address is what
// tests reach it by: a URL, contact points, an executable's path.
type Service struct {
	// Name starts the error that fails a test without the service
	// ("postgres").
	Name string
	// Find returns the service's address when it is already there (an
	// environment variable, a port that answers), or "".
	Find func() string
	// Script, run with Args, starts the service and prints its address.
	Script string
	Args   []string

	once sync.Once
	addr string
	err  error
}

// Addr returns the service's address, found or started on the first call
// of the process. It fails t when the service cannot be had: tests are
// never skipped for want of it, except in the fast tier (FastTier).
func (s *Service) Addr(t testing.TB) string {
	t.Helper()
	Require(t, s.Name)
	s.once.Do(func() {
		if s.Find != nil {
			if s.addr = s.Find(); s.addr != "" {
				return
			}
		}
		s.addr, s.err = Output(s.Script, s.Args...)
	})
	if s.err != nil {
		t.Fatalf("%s: %v", s.Name, s.err)
	}
	return s.addr
}

// FastTier reports whether the tests run as the fast tier (KCK_TEST_FAST=1,
// `make check`): no service is installed, started or used, and a test that
// needs one is skipped, saying which. `make test` runs every test.
func FastTier() bool { return os.Getenv("KCK_TEST_FAST") == "1" }

// Require skips t in the fast tier: it needs what (a service, chromium).
func Require(t testing.TB, what string) {
	t.Helper()
	if FastTier() {
		t.Skip("fast tier (KCK_TEST_FAST=1): needs " + what + "; make test runs it")
	}
}

// UniqueName returns prefix and 8 random hex digits: the name of a
// database or keyspace of one test, apart from every other test's.
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
