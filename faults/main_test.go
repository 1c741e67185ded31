//go:build faults

package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/gatewaytest"
)

// suite is what TestMain sets up once for every scenario.
var suite struct {
	binary string
	repo   string
	// cassHosts are the suite's Cassandra nodes, once a scenario needed
	// them (needCassandra).
	cassHosts []string
	cassOnce  sync.Once
	cassErr   error
	// cassEnv are the KCK_CASSANDRA_* variables the cluster scripts get, so
	// they act on the suite's cluster and no other.
	cassEnv []string
	// pgAdmin is the DSN of the suite's PostgreSQL (database kck); each
	// scenario creates its own database there.
	pgAdmin string
	// busURL is the suite's own NATS server (the change bus), which a
	// scenario may stop; busEnv are the variables its script gets.
	busURL string
	busEnv []string
	busDir string // its pid file and log
	soak   time.Duration
	// ciForm (KCK_FAULTS_CI=1, make faults-ci) halves the scenarios' fixed
	// phases: the same assertions in less of CI's time.
	ciForm  bool
	report  string
	started time.Time
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	suite.started = time.Now()
	suite.repo = repoRoot()
	dir, err := os.MkdirTemp("", "kck-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if suite.binary, err = gatewaytest.BuildKCK(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	suite.soak, err = time.ParseDuration(envOr("KCK_FAULTS_SOAK", "30s"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: KCK_FAULTS_SOAK:", err)
		return 1
	}
	suite.report = os.Getenv("KCK_FAULTS_REPORT")
	suite.ciForm = os.Getenv("KCK_FAULTS_CI") == "1"
	if suite.ciForm && suite.report != "" {
		fmt.Fprintln(os.Stderr, "faults: KCK_FAULTS_CI=1 (halved phases) writes no report")
		return 1
	}

	// The suite's own Cassandra: node i on 127.0.0.(base+i), its own run
	// dir; the scripts kill and restart only its nodes.
	base := envOr("KCK_FAULTS_CASSANDRA_BASE", "10")
	if _, err := strconv.Atoi(base); err != nil {
		fmt.Fprintln(os.Stderr, "faults: KCK_FAULTS_CASSANDRA_BASE:", err)
		return 1
	}
	suite.cassEnv = []string{
		"KCK_CASSANDRA_NODE_BASE=" + base,
		"KCK_CASSANDRA_RUN_DIR=" + envOr("KCK_FAULTS_CASSANDRA_RUN_DIR", filepath.Join(suite.repo, ".cache", "faults", "cassandra")),
		"KCK_CASSANDRA_HEAP=" + envOr("KCK_CASSANDRA_HEAP", "512M"),
		// A node restarted under the load takes minutes on a busy 2-core
		// machine (measured up to 160 s); the scripts' default is 180 s.
		"KCK_CASSANDRA_TIMEOUT=" + envOr("KCK_CASSANDRA_TIMEOUT", "600"),
	}
	out, err := script("faults/postgres.sh", "start")
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: start the suite's PostgreSQL: %v\n", err)
		return 1
	}
	suite.pgAdmin = strings.TrimSpace(out)

	suite.busDir = filepath.Join(suite.repo, ".cache", "faults", "nats")
	suite.busEnv = []string{
		"KCK_NATS_PORT=" + envOr("KCK_FAULTS_NATS_PORT", "4232"),
		"KCK_NATS_MONITOR_PORT=" + envOr("KCK_FAULTS_NATS_MONITOR_PORT", "8232"),
		"KCK_NATS_DIR=" + suite.busDir,
	}
	out, err = busScript("ensure.sh")
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: start the suite's NATS server: %v\n", err)
		return 1
	}
	suite.busURL = strings.TrimSpace(out)
	defer func() { _, _ = busScript("down.sh") }()

	code := m.Run()
	if suite.report != "" {
		if err := writeReport(suite.report); err != nil {
			fmt.Fprintln(os.Stderr, "faults: report:", err)
			code = 1
		}
	}
	return code
}

// needCassandra starts the suite's Cassandra the first time a scenario needs
// it (reusing a running one), so that a scenario on the embedded or the
// PostgreSQL store alone runs without three JVMs.
func needCassandra(t *testing.T) {
	t.Helper()
	suite.cassOnce.Do(func() {
		var out string
		if out, suite.cassErr = script("cassandra/ensure.sh", "3"); suite.cassErr == nil {
			suite.cassHosts = strings.Split(strings.TrimSpace(out), ",")
		}
	})
	require.NoError(t, suite.cassErr, "start the suite's Cassandra")
}

// busScript runs scripts/nats/<name> on the suite's NATS server.
func busScript(name string) (string, error) {
	cmd := exec.Command(filepath.Join(suite.repo, "scripts", "nats", name))
	cmd.Env = append(os.Environ(), suite.busEnv...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return string(out), err
}

// script runs one of scripts/<name> with the suite's cluster variables and
// returns its stdout; stderr (the scripts' log) goes to the test's stderr.
func script(name string, args ...string) (string, error) {
	return scriptEnv(suite.cassEnv, name, args...)
}

// scriptEnv is script with env instead of the cluster variables.
func scriptEnv(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(suite.repo, "scripts", name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// hold lets a scenario's phase run for d, or d/2 in the CI form.
func hold(d time.Duration) {
	time.Sleep(phase(d))
}

// phase is a phase's length d, halved in the CI form.
func phase(d time.Duration) time.Duration {
	if suite.ciForm {
		return d / 2
	}
	return d
}
