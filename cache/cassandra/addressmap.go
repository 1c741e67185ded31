package cassandra

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// AddressMap maps the address a node announces (its rpc_address and native
// port, as system.local and system.peers give them) to the address the
// gateway dials instead: nodes behind a NAT, a port forward or a proxy.
// Nodes it does not name are dialled as they announce themselves.
type AddressMap map[netip.AddrPort]netip.AddrPort

// ParseAddressMap reads "announced=dialled" pairs of IP:port, separated
// by commas, as --cassandra-address-map takes them:
//
//	10.0.0.1:9042=203.0.113.7:19042,10.0.0.2:9042=203.0.113.7:19043
//
// IPv6 addresses go in brackets ([fd00::1]:9042). Blanks around pairs are
// ignored; an empty string is an empty map. An address is an IP, not a
// host name: the driver hands the translation an IP and dials the IP it
// returns, so a name would have to be resolved once, at start, and go
// stale.
//
// Two nodes may not be dialled at the same IP (one address, two ports, as
// a NAT's port forwards would have it): gocql tells hosts apart by the IP
// it dials, ignoring the port (HostInfo.Equal; its round-robin host list
// keeps one of them and drops them all when one goes down), and answers
// "no hosts available" with nodes up (measured through proxies on
// 127.0.0.1). Give each node an IP of its own.
func ParseAddressMap(s string) (AddressMap, error) {
	m := AddressMap{}
	dialled := map[netip.Addr]netip.AddrPort{}
	for i, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			if strings.TrimSpace(s) == "" {
				break
			}
			return nil, fmt.Errorf("pair %d is empty", i+1)
		}
		from, to, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("pair %d %q: want announced=dialled, each IP:port", i+1, pair)
		}
		f, err := parseAddrPort(strings.TrimSpace(from))
		if err != nil {
			return nil, fmt.Errorf("pair %d %q: announced address: %w", i+1, pair, err)
		}
		t, err := parseAddrPort(strings.TrimSpace(to))
		if err != nil {
			return nil, fmt.Errorf("pair %d %q: dialled address: %w", i+1, pair, err)
		}
		if _, dup := m[f]; dup {
			return nil, fmt.Errorf("pair %d %q: %s is mapped twice", i+1, pair, f)
		}
		if other, dup := dialled[t.Addr()]; dup {
			return nil, fmt.Errorf("pair %d %q: %s is dialled at %s too: the driver tells nodes apart by IP, give each its own", i+1, pair, other, t.Addr())
		}
		m[f], dialled[t.Addr()] = t, f
	}
	return m, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not IP:port", s)
	}
	if a.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port 0", s)
	}
	if a.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q: an IPv6 zone cannot be dialled through the driver", s)
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), nil
}

// String is the map in ParseAddressMap's form, sorted by announced
// address.
func (m AddressMap) String() string {
	keys := make([]netip.AddrPort, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b netip.AddrPort) int { return a.Compare(b) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.String() + "=" + m[k].String()
	}
	return strings.Join(parts, ",")
}

// Translate is the map as a gocql.AddressTranslator.
func (m AddressMap) Translate(ip net.IP, port int) (net.IP, int) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 {
		return ip, port
	}
	to, ok := m[netip.AddrPortFrom(a.Unmap(), uint16(port))]
	if !ok {
		return ip, port
	}
	return net.IP(to.Addr().AsSlice()), int(to.Port())
}
