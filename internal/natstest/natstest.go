// Package natstest runs NATS servers for tests: in this process, either
// with no port (a test's own bus, nothing to clean up) or on a loopback
// port that child processes (gateway binaries) and restarts can use.
package natstest

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	natsbus "github.com/kck-go/kck/cache/nats"
)

// Server is a NATS server in this process.
type Server struct {
	*server.Server
	opts server.Options
	mu   sync.Mutex
}

// Start starts a server with no port: only Bus reaches it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{opts: server.Options{DontListen: true, NoLog: true, NoSigs: true}}
	s.start(t)
	t.Cleanup(s.Shutdown)
	return s
}

// Listen starts a server on a free loopback port; URL gives it.
func Listen(t testing.TB) *Server {
	t.Helper()
	s := &Server{opts: server.Options{Host: "127.0.0.1", Port: freePort(t), NoLog: true, NoSigs: true}}
	s.start(t)
	t.Cleanup(func() { s.current().Shutdown() })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	o := s.opts
	srv, err := server.NewServer(&o)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(30*time.Second), "nats server did not start")
	s.mu.Lock()
	s.Server = srv
	s.mu.Unlock()
}

func (s *Server) current() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Server
}

// URL is the server's nats:// URL ("" for one with no port).
func (s *Server) URL() string {
	if s.opts.DontListen {
		return ""
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
}

// Stop shuts the server down (connections see it go).
func (s *Server) Stop() { s.current().Shutdown() }

// Restart starts a new server on the same port after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

var clusters atomic.Uint64

// Cluster is a cluster name of its own for the test: gateways of one test
// share it, tests on one server never see each other's messages.
func Cluster(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s_%d_%d", name, os.Getpid(), clusters.Add(1))
}

// Bus opens a bus to s for one gateway (owner) of cluster; closed at the
// test's end.
func Bus(t testing.TB, s *Server, cluster, owner string) *natsbus.Bus {
	t.Helper()
	cfg := natsbus.Config{Cluster: cluster, Name: owner, URL: s.URL()}
	if cfg.URL == "" {
		cfg.InProcess = s.current()
	}
	b, err := natsbus.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var (
	shared     *Server
	sharedOnce sync.Once
)

// URL returns a NATS URL child processes can dial: KCK_BUS_URL when set
// (make test exports the one scripts/nats/ensure.sh runs), else that of a
// server this test binary starts on a loopback port, shared by its tests
// (pair it with Cluster).
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("KCK_BUS_URL"); u != "" {
		return u
	}
	sharedOnce.Do(func() {
		s := &Server{opts: server.Options{Host: "127.0.0.1", Port: freePort(t), NoLog: true, NoSigs: true}}
		s.start(t)
		shared = s // lives as long as the test binary
	})
	require.NotNil(t, shared, "the shared nats server did not start")
	return shared.URL()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
