package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

type report struct {
	started               time.Time
	took                  time.Duration
	loadBefore, loadAfter string
	keys                  []int
	servers               []*server
	closed                map[string]map[int]closedResult
	open                  map[string]map[int][]openResult
	miss                  []missResult
}

const beginMarker, endMarker = "<!-- peers:begin (written by make bench-peers) -->", "<!-- peers:end -->"

// markdown is the run's tables and verdicts.
func (r *report) markdown(c config) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("Run %s UTC, %d cores, %s; load average %s before, %s after; %s per closed-loop point, %s per open-loop point; %s in all.\n\n",
		r.started.UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), runtime.Version(), r.loadBefore, r.loadAfter,
		c.dur, c.openDur, r.took.Round(time.Second))
	if len(r.servers) > 0 {
		r.loadTables(c, p)
	}
	if len(r.miss) > 0 {
		p("\nThe miss path: the first read of title_list (`cache.Get`) against its primer's SQL through pgx, one of each per key, in turn, %d keys per store.\n\n", r.miss[0].n)
		p("| store | raw SQL p50 | first read p50 | overhead p50 | raw SQL p99 | first read p99 | overhead p99 |\n|---|---|---|---|---|---|---|\n")
		for _, m := range r.miss {
			p("| %s | %s ms | %s ms | **%s ms** | %s ms | %s ms | %s ms |\n", m.store, msStr(m.rawP50), msStr(m.firstP50), msStr(m.firstP50-m.rawP50),
				msStr(m.rawP99), msStr(m.firstP99), msStr(m.firstP99-m.rawP99))
		}
	}
	p("\nTargets, from this run:\n\n")
	for _, v := range r.verdicts() {
		p("- %s\n", v)
	}
	return b.String()
}

// loadTables are the closed- and open-loop tables.
func (r *report) loadTables(c config, p func(format string, args ...any)) {
	p("Closed loop (wrk, %d connections, %d threads): maximum req/s, and x the ceiling.\n\n", c.conns, c.wrkThreads)
	p("| server |")
	for _, k := range r.keys {
		p(" %s: req/s | x ceiling |", keysName(k))
	}
	p("\n|---|")
	for range r.keys {
		p("---|---|")
	}
	p("\n")
	for _, s := range r.servers {
		p("| %s |", s.label)
		for _, k := range r.keys {
			res := r.closed[s.name][k]
			p(" %.0f | %.3f |", res.rps, res.rps/r.closed["static"][k].rps)
		}
		p("\n")
	}
	for _, k := range r.keys {
		p("\nOpen loop (vegeta at fixed rates), %s: p50 / p99 / p99.9 in ms.\n\n", keysName(k))
		p("| server |")
		for _, f := range fractions {
			p(" %.0f%% of the ceiling (%.0f req/s) |", f*100, f*r.closed["static"][k].rps)
		}
		p("\n|---|")
		for range fractions {
			p("---|")
		}
		p("\n")
		for _, s := range r.servers {
			p("| %s |", s.label)
			for _, o := range r.open[s.name][k] {
				p(" %s |", o.cell())
			}
			p("\n")
		}
	}
}

func keysName(k int) string {
	if k == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", k)
}

var peerNames = []string{"yoga", "apollo", "postgraphile", "gqlgen"}

func (r *report) verdicts() []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	for _, kck := range []string{"kck-embedded", "kck-postgres", "kck-cassandra"} {
		if r.closed[kck] == nil {
			continue
		}
		for _, k := range r.keys {
			x := r.closed[kck][k].rps / r.closed["static"][k].rps
			out = append(out, fmt.Sprintf("%s, %s: %.2fx the ceiling (target >= 0.9x): %s", kck, keysName(k), x, mark(x >= 0.9)))
			worst, worstName := 0.0, ""
			for _, p := range peerNames {
				if pr, ok := r.closed[p][k]; ok {
					if x := r.closed[kck][k].rps / pr.rps; worstName == "" || x < worst {
						worst, worstName = x, p
					}
				}
			}
			if worstName != "" {
				out = append(out, fmt.Sprintf("%s, %s: %.1fx the fastest peer, %s (target >= 10x): %s", kck, keysName(k), worst, worstName, mark(worst >= 10)))
			}
			for i, o := range r.open[kck][k] {
				if o.fraction == 0.5 && !o.over {
					// The ceiling's own figure at the same rate tells the
					// server's share from the machine's and the generator's.
					ceil := r.open["static"][k][i]
					out = append(out, fmt.Sprintf("%s, %s: p99 %s ms at 50%% of the ceiling's maximum, sent %.0f of %.0f req/s (target <= 2 ms): %s; the ceiling's own p99 there: %s ms, sent %.0f req/s",
						kck, keysName(k), msStr(o.p99), o.achieved, o.rate, mark(o.p99 <= 2*time.Millisecond), msStr(ceil.p99), ceil.achieved))
				}
			}
		}
	}
	for _, m := range r.miss {
		o := m.firstP50 - m.rawP50
		if m.store == "embedded" || m.store == "PostgreSQL" {
			out = append(out, fmt.Sprintf("miss path, %s store: p50 overhead %s ms (target <= 1 ms): %s", m.store, msStr(o), mark(o <= time.Millisecond)))
		} else {
			out = append(out, fmt.Sprintf("miss path, %s: p50 overhead %s ms (no target)", m.store, msStr(o)))
		}
	}
	return out
}
