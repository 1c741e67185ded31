// Package browsertest runs browser tests: a Node script in browser/ that drives
// Debian's chromium through playwright-core. scripts/browser/ensure.sh installs
// both when absent. Tests are never skipped for want of a browser.
//
// A script gets its arguments on the command line and KCK_CHROMIUM in its
// environment (the executable to launch); it exits 0 when every check passed
// and prints what it saw. browser/lib.mjs holds what scripts share: launching
// headless chromium, refusing every request that leaves the machine, and
// collecting console errors.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kck-go/kck/internal/scriptrun"
)

var browser = &scriptrun.Service{Name: "browser", Script: "scripts/browser/ensure.sh"}

// Root is the repository's browser/ directory.
func Root() string {
	return filepath.Join(scriptrun.Root(), "browser")
}

// Chromium returns the path of the chromium executable, installing chromium
// and browser/node_modules first when absent.
func Chromium(t testing.TB) string {
	t.Helper()
	return browser.Addr(t)
}

// Command returns browser/<script> as a node command with args, not
// started, for a test that talks with the script over stdin and stdout;
// it installs what scripts need first, as Run does.
func Command(t testing.TB, ctx context.Context, script string, args ...string) *exec.Cmd {
	t.Helper()
	exe := Chromium(t)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(Root(), script)}, args...)...)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "KCK_CHROMIUM="+exe)
	return cmd
}

// Run runs browser/<script> with node and args, logs its output, and fails
// the test when it exits non-zero. It returns the script's standard output.
func Run(t testing.TB, ctx context.Context, script string, args ...string) string {
	t.Helper()
	cmd := Command(t, ctx, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	e := cmd.Run()
	if s := stdout.String(); s != "" {
		t.Logf("%s stdout:\n%s", script, s)
	}
	if s := stderr.String(); s != "" {
		t.Logf("%s stderr:\n%s", script, s)
	}
	if e != nil {
		t.Fatalf("%s: %v", script, e)
	}
	return stdout.String()
}
