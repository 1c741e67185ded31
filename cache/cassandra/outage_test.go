package cassandra_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

// proxy forwards TCP connections to one node. Cut closes the listener and
// every open connection, so that the node is unreachable for the gateway
// while it goes on running for everyone else; Restore listens again on the
// same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
}

func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) Restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}

// Nodes cut off from the gateway by TCP proxies (issue 14; the shared
// nodes keep running): with none reachable a miss's read and a write fail within the request timeout
// with primers.ErrUnavailable (503 UNAVAILABLE at the edge) while hot
// products come from the in-process tier; once the proxies are back, reads
// and writes pass again with no help.
func TestNodesUnreachable(t *testing.T) {
	t.Parallel()
	cfg := keyspace(t)
	if len(cfg.Hosts) < 3 {
		t.Skipf("needs a 3-node cluster, have %v", cfg.Hosts)
	}
	proxies := map[string]*proxy{}
	var contact []string
	for i, h := range cfg.Hosts {
		// An IP per proxy (127.0.98.1-3): gocql tells hosts apart by IP, and
		// proxies sharing 127.0.0.1 made it answer "no hosts available"
		// with the third node reachable (see cassandra.ParseAddressMap).
		p := proxyOn(t, "127.0.98."+strconv.Itoa(i+1), h)
		proxies[h] = p
		contact = append(contact, p.addr)
	}
	cfg.Hosts = contact
	cfg.Timeout = 2 * time.Second
	cfg.ConnectTimeout = 2 * time.Second
	cfg.AddressTranslator = gocql.AddressTranslatorFunc(func(ip net.IP, port int) (net.IP, int) {
		p, ok := proxies[net.JoinHostPort(ip.String(), strconv.Itoa(port))]
		if !ok {
			return ip, port
		}
		h, ps, _ := net.SplitHostPort(p.addr)
		n, _ := strconv.Atoi(ps)
		return net.ParseIP(h), n
	})
	s := open(t, cfg)
	put := func(key string, v uint64) error {
		return s.Put(ctx(t), cache.Entry{Key: key, Value: []byte(`"v"`), Version: v, ComputedAt: time.Now()})
	}
	require.NoError(t, put("hot/1", 1))

	// Two of three cut off from the gateway, all three running: the third
	// coordinates, and its quorum is there. (With the proxies on one IP
	// this failed with "no hosts available" in some runs.)
	cut := 0
	for _, p := range proxies {
		if cut == 2 {
			break
		}
		p.Cut()
		cut++
	}
	var gerr, perr error
	deadline := time.Now().Add(time.Minute)
	for {
		_, gerr = s.Get(ctx(t), "hot/1")
		perr = put("two-cut/1", 1)
		if gerr == nil && perr == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, gerr, "a read served through the third node")
	require.NoError(t, perr, "a write served through the third node")

	for _, p := range proxies {
		p.Cut()
	}
	began := time.Now()
	_, err := s.Get(ctx(t), "miss/1")
	require.True(t, errors.Is(err, primers.ErrUnavailable), "a read with no node reachable: %v", err)
	err = put("miss/1", 1)
	require.True(t, errors.Is(err, primers.ErrUnavailable), "a write with no node reachable: %v", err)
	// Hang guard, not a latency claim: both are bounded by the 2 s timeout
	// (and the driver's retries), far below it.
	require.Less(t, time.Since(began), 30*time.Second)
	t.Logf("read and write failed in %v: %v", time.Since(began), err)

	for _, p := range proxies {
		p.Restore()
	}
	require.Eventually(t, func() bool {
		_, gerr := s.Get(ctx(t), "hot/1")
		return gerr == nil && put("after/1", 1) == nil
	}, 2*time.Minute, 100*time.Millisecond, "reads and writes pass once the nodes are reachable again")
}
