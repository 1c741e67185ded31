package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kck.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// Flag over variable over file over default.
func TestConfigFilePrecedence(t *testing.T) {
	t.Setenv("KCK_CASSANDRA_HOSTS", "")
	t.Setenv("KCK_STORE", "")
	t.Setenv("KCK_LOG_LEVEL", "")
	t.Setenv("KCK_CONFIG", "")
	p := writeConfig(t, `# a gateway's settings
addr: ":9000"
store: cassandra
cassandra-hosts: [10.0.0.1, 10.0.0.2]
bus-url: nats://10.0.0.3:4222
compute-lease: 45s
log-level: debug
memory-mb: 64
replication: dc1:3   # migrate's: serve leaves it
`)
	cfg, err := parseServe([]string{"--config", p}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":9000", cfg.Addr)
	assert.Equal(t, "cassandra", cfg.Store)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, cfg.Cassandra.Hosts)
	assert.Equal(t, 45*time.Second, cfg.ComputeLease)
	assert.Equal(t, 64, cfg.MemoryMB)
	assert.Equal(t, "debug", cfg.LogLevel)
	assert.Equal(t, 2*time.Minute, cfg.QueueLease, "the default where the file is silent")

	t.Setenv("KCK_LOG_LEVEL", "warn")
	cfg, err = parseServe([]string{"--config=" + p, "--addr", ":9100"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":9100", cfg.Addr, "the flag wins over the file")
	assert.Equal(t, "warn", cfg.LogLevel, "the variable wins over the file")

	t.Setenv("KCK_CONFIG", p)
	cfg, err = parseServe(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":9000", cfg.Addr, "KCK_CONFIG names the file")
}

// Every command reads the same file and takes what it has.
func TestConfigFileSharedByCommands(t *testing.T) {
	t.Setenv("KCK_CONFIG", "")
	t.Setenv("KCK_POSTGRES_URL", "") // make test's, which the variable would win with
	t.Setenv("KCK_STORE", "")
	dir := t.TempDir()
	p := writeConfig(t, "store: embedded\ndata-dir: "+dir+"\npostgres-url: \"\"\naddr: \":9000\"\n")
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"warm", "--config", p, "top_authors"}, &out, &errOut), errOut.String())
	out.Reset()
	require.Equal(t, 0, run([]string{"dump", "--config", p}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), `"key":"top_authors/10"`, "dump read the store the file named")
}

func TestConfigFileErrors(t *testing.T) {
	t.Setenv("KCK_CONFIG", "")
	for _, tc := range []struct{ body, want string }{
		{"adr: :9000\n", `kck.yaml:1: no setting "adr"`},
		{"addr: a\nmemory-mb: lots\n", `kck.yaml:2: memory-mb: parse error`},
		{"addr: a\naddr: b\n", "line 2: addr is set twice"},
		{"- addr\n", "want a mapping"},
		{"addr: {host: a}\n", "addr: want a value or a list"},
		{"addr: [a, [b]]\n", "a list of plain values only"},
		{"addr: \"unclosed\n", "kck.yaml: yaml:"},
	} {
		p := writeConfig(t, tc.body)
		var errOut bytes.Buffer
		code := run([]string{"serve", "--config", p}, io.Discard, &errOut)
		assert.Equal(t, 2, code, tc.body)
		assert.Contains(t, errOut.String(), tc.want, tc.body)
	}
	var errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"serve", "--config", "/nonexistent/kck.yaml"}, io.Discard, &errOut))
	assert.Contains(t, errOut.String(), "no such file")
	p := writeConfig(t, "")
	_, err := parseServe([]string{"--config", p}, io.Discard)
	assert.NoError(t, err, "an empty file sets nothing")
	assert.Equal(t, 0, run([]string{"serve", "--help", "--config", "/nonexistent"}, io.Discard, &errOut), "help needs no file")
}

func TestConfigPath(t *testing.T) {
	t.Setenv("KCK_CONFIG", "env.yaml")
	for args, want := range map[string]string{
		"--config a.yaml": "a.yaml",
		"-config=b.yaml":  "b.yaml",
		"--addr x":        "env.yaml",
		"-- --config c":   "env.yaml",
		"--config":        "env.yaml",
		"KEY --config d":  "d",
	} {
		assert.Equal(t, want, configPath(strings.Fields(args)), args)
	}
}

// parseConfig never panics, and what it accepts has each name once.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"addr: \":9000\"\n", "cassandra-hosts: [a, b]\n", "- x\n", "a: {b: c}\n", "a: &x 1\nb: *x\n", "", "a: [1, [2]]\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		settings, err := parseConfig([]byte(body))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, s := range settings {
			if seen[s.name] {
				t.Fatalf("%q twice", s.name)
			}
			seen[s.name] = true
		}
	})
}
