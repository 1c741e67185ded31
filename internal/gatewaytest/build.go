package gatewaytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kck-go/kck/internal/scriptrun"
)

// RepoRoot is the module root's directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildKCK builds the kck command into dir and returns its path; the
// output of go build goes to stderr.
func BuildKCK(dir string) (string, error) {
	bin := filepath.Join(dir, "kck")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build kck: %w", err)
	}
	return bin, nil
}

// MainWithKCK is a TestMain for packages that run the kck binary as a
// process: it builds it into a temporary directory, sets *binary, runs the
// tests and removes the directory. It returns the exit code.
func MainWithKCK(m *testing.M, name string, binary *string) int {
	if scriptrun.FastTier() {
		// Every test of these packages runs gateways on real services.
		fmt.Println(name + ": skipped in the fast tier (KCK_TEST_FAST=1); make test runs it")
		return 0
	}
	dir, err := os.MkdirTemp("", "kck-"+name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *binary, err = BuildKCK(dir); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return m.Run()
}
