//go:build image

package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/jackc/pgx/v5"

	"github.com/kck-go/kck/internal/cassandratest"
	"github.com/kck-go/kck/internal/gatewaytest"
	"github.com/kck-go/kck/internal/natstest"
	"github.com/kck-go/kck/internal/pgtest"
)

// tag is the image under test (make image-test sets it).
var tag = os.Getenv("KCK_IMAGE")

func TestMain(m *testing.M) {
	if tag == "" {
		fmt.Fprintln(os.Stderr, "image: KCK_IMAGE names no image: run make image-test")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
	}
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// The image's root filesystem, as podman exports it, holds the binary
// (static: no interpreter, no shared library), the CA certificates and the
// zoneinfo, and the data directory of the non-root user: nothing else.
func TestImageContents(t *testing.T) {
	id := podman(t, "create", tag)
	t.Cleanup(func() { _ = exec.Command("podman", "rm", id).Run() })
	export := exec.Command("podman", "export", id)
	stdout, err := export.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, export.Start())
	var (
		binary, certs []byte
		zones         = map[string][]byte{}
		dirs          []string
		others        []string
	)
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		switch {
		case h.Typeflag == tar.TypeDir && name == "data":
			assert.Equal(t, 65532, h.Uid, "/data belongs to the image's user")
			assert.Equal(t, 65532, h.Gid)
			dirs = append(dirs, name)
		case h.Typeflag == tar.TypeDir && (name == "etc" || name == "etc/ssl" || name == "etc/ssl/certs" || name == "usr" || name == "usr/share" || strings.HasPrefix(name, "usr/share/zoneinfo")):
			dirs = append(dirs, name)
		case name == "kck":
			assert.Equal(t, os.FileMode(0o755), h.FileInfo().Mode().Perm())
			binary, err = io.ReadAll(tr)
			require.NoError(t, err)
		case name == "etc/ssl/certs/ca-certificates.crt":
			certs, err = io.ReadAll(tr)
			require.NoError(t, err)
		case strings.HasPrefix(name, "usr/share/zoneinfo/") && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink):
			zones[strings.TrimPrefix(name, "usr/share/zoneinfo/")], err = io.ReadAll(tr)
			require.NoError(t, err)
		default:
			others = append(others, fmt.Sprintf("%s (%c)", name, h.Typeflag))
		}
	}
	require.NoError(t, export.Wait())
	assert.Empty(t, others, "the image holds the binary, CA certificates and zoneinfo only")
	assert.Contains(t, dirs, "data")

	require.NotEmpty(t, binary, "/kck")
	f, err := elf.NewFile(bytes.NewReader(binary))
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary: no dynamic loader")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "no shared library")

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certs), "CA certificates in PEM")
	assert.Greater(t, bytes.Count(certs, []byte("BEGIN CERTIFICATE")), 100)

	for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"} {
		data, ok := zones[zone]
		require.True(t, ok, "zoneinfo/%s", zone)
		if len(data) > 0 { // a hard link's data is its target's
			_, err := time.LoadLocationFromTZData(zone, data)
			assert.NoError(t, err, zone)
		}
	}
	t.Logf("image %s: binary %d bytes, %d zoneinfo files, CA bundle %d bytes", tag, len(binary), len(zones), len(certs))
}

// config is the part of the image's configuration that says how it runs.
type config struct {
	User         string
	Env          []string
	Entrypoint   []string
	Cmd          []string
	Volumes      map[string]struct{}
	ExposedPorts map[string]struct{}
}

func TestImageDefaults(t *testing.T) {
	var c []struct{ Config config }
	require.NoError(t, json.Unmarshal([]byte(podman(t, "image", "inspect", tag)), &c))
	require.Len(t, c, 1)
	cfg := c[0].Config
	assert.Equal(t, "65532:65532", cfg.User, "a numeric non-root user (runAsNonRoot can check it)")
	assert.Equal(t, []string{"/kck"}, cfg.Entrypoint)
	assert.Equal(t, []string{"serve"}, cfg.Cmd)
	assert.Contains(t, cfg.Env, "KCK_DATA_DIR=/data")
	assert.Contains(t, cfg.Env, "KCK_HTTP_ADDR=:8080")
	assert.Contains(t, cfg.Volumes, "/data")
	assert.Contains(t, cfg.ExposedPorts, "8080/tcp")
}

// The gateway runs from the image, in a real container (podman), as its
// defaults say: the demo on the embedded store in /data, a volume mounted
// from the host, written by the image's user; SIGTERM drains and stops it
// with exit code 0; a second container on the same volume serves what the
// first one wrote.
//
// podman's flags, for this machine: runc (crun refuses the machine's hybrid
// cgroups), open files and processes within the machine's hard limits
// (podman's defaults are above them: setting them fails), the host's network
// (no bridge to set up; the gateway listens on a free loopback port).
func TestImageRunsTheGateway(t *testing.T) {
	data := t.TempDir()
	require.NoError(t, os.Chmod(data, 0o777)) // the container's user is not ours
	run := func(name string) (base string, stop func() (exitCode string, logs string)) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		podman(t, "run", "-d", "--name", name, "--runtime", "runc",
			"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "--network", "host",
			"-e", "KCK_HTTP_ADDR="+addr, "-e", "KCK_DRAIN_DELAY=1s", "-v", data+":/data", tag)
		t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", name).Run() })
		base = "http://" + addr
		return base, func() (string, string) {
			podman(t, "stop", "--time", "60", name)                            // SIGTERM, then SIGKILL after 60 s
			logs, err := exec.Command("podman", "logs", name).CombinedOutput() // the gateway logs to stderr
			require.NoError(t, err)
			return podman(t, "inspect", "--format", "{{.State.ExitCode}}", name), string(logs)
		}
	}
	name := fmt.Sprintf("kck-image-test-%d", os.Getpid())
	base, stop := run(name)
	gatewaytest.WaitReady(t, nil, base)
	body := post(t, base+"/graphql", `{"query":"{ titleList(authorId: 42) { title } }"}`)
	assert.Contains(t, body, `"titleList":[`)
	post(t, base+"/update", `{"name":"add_title","input":{"authorId":42,"title":"Written in a container","year":2026}}`)
	code, logs := stop()
	assert.Equal(t, "0", code, "drained and stopped cleanly:\n%s", logs)
	assert.Contains(t, logs, `"msg":"draining`)
	assert.Contains(t, logs, `"msg":"stopped cleanly"`)

	st, err := os.Stat(filepath.Join(data, "kck.db"))
	require.NoError(t, err, "the embedded store is in the mounted /data")
	assert.Positive(t, st.Size())

	base, stop = run(name + "-again")
	gatewaytest.WaitReady(t, nil, base)
	assert.Contains(t, post(t, base+"/graphql", `{"query":"{ titleList(authorId: 42) { title } }"}`), "Written in a container",
		"the volume kept the store and the demo's journal")
	code, logs = stop()
	assert.Equal(t, "0", code, logs)
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	return string(b)
}

// The Kubernetes manifests' configuration runs: the image, with the
// ConfigMap kck-config's variables, the SQL products of kck-sql mounted
// read-only at KCK_SQL_DIR, the Secrets' variables (a JWT key, PGPASSWORD)
// and a read-only root filesystem, first as the migrate Job (kck migrate:
// the keyspace, the change triggers), then as a gateway, on the real
// Cassandra cluster and PostgreSQL; only the external services' addresses
// (and the change bus's) are this machine's. The gateway serves the SQL products, follows a row
// inserted in PostgreSQL, keeps introspection and the playground off
// (KCK_PRODUCTION), and drains on SIGTERM.
func TestManifestConfigRuns(t *testing.T) {
	config := configMap(t, "configmap.yaml")
	sql := configMap(t, "configmap-sql.yaml")
	sqlDir := t.TempDir()
	for name, body := range sql {
		require.NoError(t, os.WriteFile(filepath.Join(sqlDir, name), []byte(body), 0o644))
	}
	require.NoError(t, os.Chmod(sqlDir, 0o755))
	data := t.TempDir()
	require.NoError(t, os.Chmod(data, 0o777))

	// The external services, here: the URL's password goes to PGPASSWORD,
	// as the Secret kck-postgres gives it.
	db, err := url.Parse(pgtest.Database(t))
	require.NoError(t, err)
	password, _ := db.User.Password()
	db.User = url.User(db.User.Username())
	ks := cassandratest.Keyspace(t)
	config["KCK_CASSANDRA_HOSTS"] = strings.Join(ks.Hosts, ",")
	config["KCK_CASSANDRA_KEYSPACE"] = ks.Keyspace
	config["KCK_CASSANDRA_REPLICATION_FACTOR"] = strconv.Itoa(len(ks.Hosts))
	config["KCK_POSTGRES_URL"] = db.String()
	// The change bus: the ConfigMap names nats:4222, which does not resolve
	// here. Without a bus the gateway serves, but nobody follows the source
	// tables (a follower must be heard on the bus; docs/scaling.md), so the
	// row inserted below would wait in the change log.
	config["KCK_BUS_URL"] = natstest.Listen(t).URL()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	args := func(name string) []string {
		a := []string{"run", "--name", name, "--runtime", "runc",
			"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "--network", "host",
			"--read-only", "-v", sqlDir + ":/etc/kck/sql:ro", "-v", data + ":/data",
			"-e", "PGPASSWORD=" + password, "-e", "KCK_AUTH_JWT_SECRET=" + base64.StdEncoding.EncodeToString(secret),
			"-e", "KCK_HTTP_ADDR=" + addr}
		for k, v := range config {
			a = append(a, "-e", k+"="+v)
		}
		t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", name).Run() })
		return a
	}
	prefix := fmt.Sprintf("kck-manifest-test-%d", os.Getpid())
	// The demo's tables, then the migrate Job's command.
	out, err := exec.Command("podman", append(args(prefix+"-demo"), tag, "demo", "load")...).CombinedOutput()
	require.NoError(t, err, "kck demo load: %s", out)
	out, err = exec.Command("podman", append(args(prefix+"-migrate"), tag, "migrate")...).CombinedOutput()
	require.NoError(t, err, "kck migrate: %s", out)

	podman(t, append(append(args(prefix), "-d"), tag)...)
	base := "http://" + addr
	gatewaytest.WaitReady(t, nil, base)
	body := post(t, base+"/graphql", `{"query":"{ titleList(authorId: 7) { title } }"}`)
	assert.Contains(t, body, `"titleList":[`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtestURL(db, password))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO titles (author_id, title, year) VALUES (7, 'From the manifests', 2026)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(post(t, base+"/graphql", `{"query":"{ titleList(authorId: 7) { title } }"}`), "From the manifests")
	}, time.Minute, 50*time.Millisecond, "the change trigger kck migrate installed, heard on the LISTEN connection")

	resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"{ __schema { types { name } } }"}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(b), `"errors"`, "introspection is off (KCK_PRODUCTION)")
	resp, err = http.Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no playground (KCK_PRODUCTION)")

	podman(t, "stop", "--time", "60", prefix)
	logs, err := exec.Command("podman", "logs", prefix).CombinedOutput()
	require.NoError(t, err)
	assert.Equal(t, "0", podman(t, "inspect", "--format", "{{.State.ExitCode}}", prefix), "%s", logs)
	assert.Contains(t, string(logs), `"msg":"stopped cleanly"`)
}

// configMap reads the data of the ConfigMap in deploy/kubernetes/file.
func configMap(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gatewaytest.RepoRoot(), "deploy", "kubernetes", file))
	require.NoError(t, err)
	var cm struct {
		Kind string
		Data map[string]string
	}
	require.NoError(t, yaml.Unmarshal(b, &cm))
	require.Equal(t, "ConfigMap", cm.Kind)
	require.NotEmpty(t, cm.Data)
	return cm.Data
}

func pgtestURL(u *url.URL, password string) string {
	c := *u
	c.User = url.UserPassword(u.User.Username(), password)
	return c.String()
}
