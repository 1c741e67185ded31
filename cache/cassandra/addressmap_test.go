package cassandra_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cassandra"
)

func TestParseAddressMap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: "  ", want: ""},
		{in: "127.0.0.21:9042=127.0.0.1:40001", want: "127.0.0.21:9042=127.0.0.1:40001"},
		{in: " 10.0.0.2:9042 = 203.0.113.8:19043 , 10.0.0.1:9042=203.0.113.7:19042 ",
			want: "10.0.0.1:9042=203.0.113.7:19042,10.0.0.2:9042=203.0.113.8:19043"},
		{in: "[fd00::1]:9042=[::1]:19042", want: "[fd00::1]:9042=[::1]:19042"},
		{in: "[::ffff:10.0.0.1]:9042=127.0.0.1:1", want: "10.0.0.1:9042=127.0.0.1:1"},
		{in: "10.0.0.1:9042", err: `pair 1 "10.0.0.1:9042": want announced=dialled, each IP:port`},
		{in: "10.0.0.1=10.0.0.2:9042", err: `pair 1 "10.0.0.1=10.0.0.2:9042": announced address: "10.0.0.1" is not IP:port`},
		{in: "node1:9042=10.0.0.2:9042", err: `announced address: "node1:9042" is not IP:port`},
		{in: "10.0.0.1:9042=proxy:9042", err: `dialled address: "proxy:9042" is not IP:port`},
		{in: "10.0.0.1:9042=10.0.0.2:0", err: `dialled address: "10.0.0.2:0": port 0`},
		{in: "10.0.0.1:9042=10.0.0.2:1,10.0.0.1:9042=10.0.0.3:1", err: `pair 2 "10.0.0.1:9042=10.0.0.3:1": 10.0.0.1:9042 is mapped twice`},
		{in: "10.0.0.1:9042=203.0.113.7:19042,10.0.0.2:9042=203.0.113.7:19043", err: `pair 2 "10.0.0.2:9042=203.0.113.7:19043": 10.0.0.1:9042 is dialled at 203.0.113.7 too`},
		{in: "10.0.0.1:9042=10.0.0.2:1,", err: "pair 2 is empty"},
		{in: "[fe80::1%eth0]:9042=10.0.0.2:1", err: "zone"},
	} {
		m, err := cassandra.ParseAddressMap(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		require.Equal(t, tc.want, m.String(), "%q", tc.in)
	}
}

func TestAddressMapTranslate(t *testing.T) {
	t.Parallel()
	m, err := cassandra.ParseAddressMap("127.0.0.21:9042=127.0.0.1:40001")
	require.NoError(t, err)
	// gocql hands IPv4 addresses in their 16-byte form.
	ip, port := m.Translate(net.ParseIP("127.0.0.21").To16(), 9042)
	require.Equal(t, "127.0.0.1", ip.String())
	require.Equal(t, 40001, port)
	ip, port = m.Translate(net.ParseIP("127.0.0.21").To4(), 9042)
	require.Equal(t, "127.0.0.1:40001", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	// Not in the map: as announced.
	ip, port = m.Translate(net.ParseIP("127.0.0.22"), 9042)
	require.Equal(t, "127.0.0.22", ip.String())
	require.Equal(t, 9042, port)
	ip, port = m.Translate(net.ParseIP("127.0.0.21"), 9043)
	require.Equal(t, "127.0.0.21", ip.String())
	require.Equal(t, 9043, port)
	ip, port = m.Translate(nil, 9042)
	require.Nil(t, ip)
	require.Equal(t, 9042, port)
}

// A bad map fails Open as a config error, not as an unreachable cluster
// (a gateway connecting late would wait for it forever).
func TestAddressMapConfigError(t *testing.T) {
	t.Parallel()
	_, err := cassandra.Open(t.Context(), cassandra.Config{Hosts: []string{"127.0.0.1:1"}, AddressMap: "10.0.0.1:9042"})
	require.True(t, errors.Is(err, cassandra.ErrConfig), "%v", err)
	require.ErrorContains(t, err, "address map: pair 1")
}

// FuzzParseAddressMap: whatever the input, the parser returns a map or an
// error without panicking, and a map it returns prints to a string it
// parses back to the same map.
func FuzzParseAddressMap(f *testing.F) {
	for _, s := range []string{"", "127.0.0.21:9042=127.0.0.1:40001", "a=b", "[::1]:1=[::ffff:1.2.3.4]:2, 1.2.3.4:5=6.7.8.9:10", ",", "1.2.3.4:5=1.2.3.4:5,1.2.3.4:5=1.2.3.4:6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := cassandra.ParseAddressMap(s)
		if err != nil {
			return
		}
		again, err := cassandra.ParseAddressMap(m.String())
		require.NoError(t, err, "%q printed as %q", s, m.String())
		require.Equal(t, m, again)
		for from, to := range m {
			ip, port := m.Translate(net.IP(from.Addr().AsSlice()), int(from.Port()))
			require.Equal(t, to.Addr().String(), ip.String())
			require.Equal(t, int(to.Port()), port)
		}
	})
}

// proxyOn starts a proxy to target listening on ip (port chosen by the
// system), cut at cleanup.
func proxyOn(t *testing.T, ip, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// A gateway that reaches the nodes only through --cassandra-address-map:
// the nodes announce addresses it cannot use (here: it must not, every
// connection goes through a proxy), and reads and writes pass.
func TestAddressMapThroughProxies(t *testing.T) {
	t.Parallel()
	cfg := keyspace(t)
	var contact, pairs []string
	for i, h := range cfg.Hosts {
		// An IP per proxy: ParseAddressMap refuses two nodes on one IP.
		p := proxyOn(t, "127.0.99."+strconv.Itoa(i+1), h)
		contact = append(contact, p.addr)
		pairs = append(pairs, h+"="+p.addr)
	}
	cfg.Hosts, cfg.AddressMap = contact, strings.Join(pairs, ",")
	s := open(t, cfg)
	defer s.Close()
	require.NoError(t, s.Put(ctx(t), cache.Entry{Key: "mapped/1", Value: []byte(`"v"`), Version: 1, ComputedAt: time.Now()}))
	e, err := s.Get(ctx(t), "mapped/1")
	require.NoError(t, err)
	require.Equal(t, `"v"`, string(e.Value))
}
