package cli

import (
	"bufio"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/scriptrun"
)

// The README's flag table (the one headed "| Flag | Variable |") lists
// every flag of kck serve with the variable the command table gives it,
// and nothing else: the table is documentation of the command table, so
// it may not drift from it.
func TestREADMEFlagTableMatchesCommandTable(t *testing.T) {
	f := newFlags("serve", io.Discard)
	serveFlags(f)
	want := map[string]string{} // flag: variable ("" for none)
	f.VisitAll(func(fl *flag.Flag) { want[fl.Name] = f.env[fl.Name] })
	want["config"] = "KCK_CONFIG" // every command's, added at parse

	readme, err := os.Open(filepath.Join(scriptrun.Root(), "README.md"))
	require.NoError(t, err)
	defer readme.Close()
	flagRE, envRE := regexp.MustCompile("`--([a-z0-9-]+)`"), regexp.MustCompile("`(KCK_[A-Z0-9_]+)`")
	got := map[string]string{}
	in := false
	sc := bufio.NewScanner(readme)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "| Flag | Variable |") {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break // the table ended
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 4, "row %q", line)
		names, envs := flagRE.FindAllStringSubmatch(cells[1], -1), envRE.FindAllStringSubmatch(cells[2], -1)
		require.NotEmpty(t, names, "a row names no flag: %q", line)
		for i, n := range names {
			env := ""
			if i < len(envs) {
				env = envs[i][1]
			} else if len(envs) == 1 && len(names) > 1 {
				t.Errorf("row %q: one variable for %d flags", line, len(names))
			}
			got[n[1]] = env
		}
	}
	require.True(t, in, "README.md has no flag table")
	for name, env := range want {
		if v, ok := got[name]; !ok {
			t.Errorf("--%s (%s) is not in the README's flag table", name, env)
		} else {
			assert.Equal(t, env, v, "--%s's variable in the README", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("the README's flag table lists --%s, which kck serve does not have", name)
		}
	}
}

// A KCK_* variable whose value its flag cannot take is an error naming the
// variable, as a bad flag is, not a silent default.
func TestBadVariableIsAnError(t *testing.T) {
	t.Setenv("KCK_CONFIG", "")
	for env, want := range map[string]string{
		"KCK_MEMORY_MB":     `KCK_MEMORY_MB="lots": want a whole number`,
		"KCK_COMPUTE_LEASE": `KCK_COMPUTE_LEASE="45": want a duration`,
		"KCK_ADMIN":         `KCK_ADMIN="maybe": want true or false`,
	} {
		bad := map[string]string{"KCK_MEMORY_MB": "lots", "KCK_COMPUTE_LEASE": "45", "KCK_ADMIN": "maybe"}[env]
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, bad)
			var errOut strings.Builder
			_, err := parseServe(nil, &errOut)
			require.Error(t, err)
			assert.Contains(t, errOut.String(), want)
			assert.Equal(t, 2, run([]string{"serve"}, io.Discard, io.Discard), "a usage error")
		})
	}
}
