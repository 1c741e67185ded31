package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go runs on.
const clockTicks = 100

// cpuTime is the user and system time pids have used so far; ok is false
// when one of them is gone (a node restarted: its time is lost).
func cpuTime(pids []int) (d time.Duration, ok bool) {
	ok = true
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			ok = false
			continue
		}
		// The command name (field 2) is in parentheses and may hold
		// spaces: the fields after its closing one are fixed.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			ok = false
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			ok = false
			continue
		}
		// f[0] is field 3 (state): utime is field 14, stime field 15.
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			ok = false
			continue
		}
		d += time.Duration(ut+st) * time.Second / clockTicks
	}
	return d, ok
}

// cassandraPIDs finds the JVMs of the cluster at hosts: the processes whose
// command line names a node folder (-Dkck.cassandra.node=DIR, how
// scripts/cassandra starts them) whose cassandra.yaml serves CQL at one of
// hosts. Without such a folder, every process whose command line names
// CassandraDaemon counts. note says which.
func cassandraPIDs(hosts []string) (pids []int, note string) {
	want := map[string]bool{}
	for _, h := range hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "9042")
		}
		want[h] = true
	}
	var daemons []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		for _, a := range args {
			if dir, ok := strings.CutPrefix(a, "-Dkck.cassandra.node="); ok {
				if addr := cqlAddress(filepath.Join(dir, "conf", "cassandra.yaml")); want[addr] {
					pids = append(pids, pid)
				}
				break
			}
			if strings.Contains(a, "CassandraDaemon") {
				daemons = append(daemons, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	if len(pids) > 0 {
		return pids, fmt.Sprintf("%d JVMs serving %s, from their node folders", len(pids), strings.Join(hosts, ","))
	}
	slices.Sort(daemons)
	if len(daemons) > 0 {
		return daemons, fmt.Sprintf("%d CassandraDaemon processes (node folders not found)", len(daemons))
	}
	return nil, "no Cassandra JVM found on this machine: CPU not measured"
}

// cqlAddress is the rpc_address:native_transport_port of a cassandra.yaml.
func cqlAddress(yaml string) string {
	f, err := os.Open(yaml)
	if err != nil {
		return ""
	}
	defer f.Close()
	addr, port := "", "9042"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch strings.TrimSpace(k) {
		case "rpc_address":
			addr = v
		case "native_transport_port":
			port = v
		}
	}
	if addr == "" {
		return ""
	}
	return net.JoinHostPort(addr, port)
}
