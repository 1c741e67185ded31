package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/kck-go/kck/internal/scriptrun"
)

// Server is a PostgreSQL server of one test's own, in a temporary
// directory on a free loopback port, for tests that stop the server or cut
// its connections: the shared server of KCK_POSTGRES_URL is never stopped.
// Stop and Start may be called any number of times; cleanup stops it.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cred *syscall.Credential // the postgres user's, when the test runs as root
}

// NewServer initialises and starts a throwaway server (initdb and start
// take a few seconds). Its superuser is kck, with trust authentication on
// loopback only.
func NewServer(t testing.TB) *Server {
	t.Helper()
	scriptrun.Require(t, "a PostgreSQL server of its own")
	bin, err := binDir()
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	// Not t.TempDir: its parent is private to the test's user, and the
	// server may run as another.
	dir, err := os.MkdirTemp("", "kck-pgtest-")
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the server as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("postgres: running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			t.Fatalf("postgres: %v", err)
		}
	}
	s.port = freePort(t)
	data := filepath.Join(s.dir, "data")
	s.run("initdb", "-D", data, "-U", "kck", "--auth=trust", "-E", "UTF8", "--no-sync")
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n", s.port, s.dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	s.Start()
	t.Cleanup(func() { _ = s.ctl("stop", "-m", "immediate") })
	s.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "kck", "kck")
	return s
}

// URL is the server's database kck, as superuser kck.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://kck@127.0.0.1:%d/kck?sslmode=disable", s.port)
}

// AdminURL is the server's database postgres, for what cannot be done
// connected to kck (refusing its connections, dropping it).
func (s *Server) AdminURL() string {
	return fmt.Sprintf("postgres://kck@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.ctl("start", "-w", "-t", "120", "-l", filepath.Join(s.dir, "server.log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("postgres: start: %v\n%s", err, log)
	}
}

// Stop stops the server, disconnecting every client at once (fast
// shutdown: open transactions are rolled back).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.ctl("stop", "-w", "-t", "120", "-m", "fast"); err != nil {
		s.t.Fatalf("postgres: stop: %v", err)
	}
}

func (s *Server) ctl(args ...string) error {
	return s.exec("pg_ctl", append([]string{"-D", filepath.Join(s.dir, "data")}, args...)...)
}

func (s *Server) run(name string, args ...string) {
	s.t.Helper()
	if err := s.exec(name, args...); err != nil {
		s.t.Fatalf("postgres: %v", err)
	}
}

func (s *Server) exec(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, out.String())
	}
	return nil
}

// binDir is the newest installed PostgreSQL's bin directory (Debian's
// layout), installing PostgreSQL through scripts/postgres/up.sh when there
// is none.
func binDir() (string, error) {
	newest := func() string {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool {
			vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
			vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
			return vi < vj
		})
		if len(dirs) == 0 {
			return ""
		}
		return dirs[len(dirs)-1]
	}
	if d := newest(); d != "" {
		return d, nil
	}
	if _, err := scriptrun.Output("scripts/postgres/up.sh"); err != nil {
		return "", err
	}
	if d := newest(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("no PostgreSQL under /usr/lib/postgresql after scripts/postgres/up.sh")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postgres: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
