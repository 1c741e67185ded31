package main

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type report struct {
	started               time.Time
	took                  time.Duration
	loadBefore, loadAfter string
	todayCommit           string
	cassNote              string
	runs                  []*result
}

const beginMarker, endMarker = "<!-- scale:begin (written by make bench-scale) -->", "<!-- scale:end -->"

// figures are a run's costs per change (the load's changes).
type figures struct {
	changes    float64
	runs       float64
	runsBy     map[string]float64
	ops        map[string]float64 // idle rate subtracted
	opsTotal   float64
	opsOK      bool // the binary counts store operations
	leaseWaits float64
	sent, recv float64 // bus messages
	cassMS     float64
	cassOK     bool
	gwMS       float64
	hop        histogram
	fresh      histogram // from a row change to its keys stored
	dispatches map[string]float64
	skipped    float64 // refreshes skipped, per change

	// The changes to rows nobody reads: primer runs of their keys (every
	// product but top_authors, which every gateway holds), refreshes
	// skipped, top_authors runs; counts, not per change.
	unheldRuns, unheldSkipped, unheldTop float64
}

func (r *result) figures() figures {
	f := figures{changes: float64(len(r.changes))}
	if f.changes == 0 || r.before == nil || r.after == nil {
		return f
	}
	per := func(v float64) float64 { return v / f.changes }
	idleShare := 0.0 // of the idle baseline's figures, for the window
	if r.idle != nil && r.idle.dur > 0 {
		idleShare = r.window.Seconds() / r.idle.dur.Seconds()
	}
	f.runs = per(delta(r.before, r.after, "kck_primer_runs_total", nil))
	f.runsBy = deltaBy(r.before, r.after, "kck_primer_runs_total", "product")
	for k, v := range f.runsBy {
		f.runsBy[k] = per(v)
	}
	f.opsOK = r.after.sum("kck_store_operations_total", nil) > 0
	if f.opsOK {
		f.ops = deltaBy(r.before, r.after, "kck_store_operations_total", "kind")
		for k, v := range f.ops {
			if r.idle != nil {
				v -= r.idle.ops[k] * idleShare
			}
			f.ops[k] = per(max(0, v))
			f.opsTotal += f.ops[k]
		}
	}
	f.leaseWaits = per(delta(r.before, r.after, "kck_lease_waits_total", nil))
	f.sent = per(delta(r.before, r.after, "kck_bus_messages_total", map[string]string{"direction": "sent"}))
	f.recv = per(delta(r.before, r.after, "kck_bus_messages_total", map[string]string{"direction": "received"}))
	cass, gw := r.cass, r.gw
	f.cassOK = r.cassOK
	if r.idle != nil {
		f.cassOK = f.cassOK && r.idle.cassOK
		cass -= time.Duration(float64(r.idle.cass) * idleShare)
		gw -= time.Duration(float64(r.idle.gw) * idleShare)
	}
	f.cassMS, f.gwMS = per(ms(cass)), per(ms(gw))
	hop := "kck_bus_lag_seconds"
	if r.v.bus == "" {
		hop = "kck_change_feed_lag_seconds" // today's: the polled feed
	}
	f.hop = histogramDelta(r.before, r.after, hop)
	f.fresh = histogramDelta(r.before, r.after, "kck_source_fresh_lag_seconds")
	f.dispatches = deltaBy(r.before, r.after, "kck_dispatches_total", "outcome")
	f.skipped = per(delta(r.before, r.after, "kck_refreshes_total", map[string]string{"outcome": "skipped"}))
	if r.unheldAfter != nil {
		by := deltaBy(r.unheldBefore, r.unheldAfter, "kck_primer_runs_total", "product")
		for p, v := range by {
			if p == "top_authors" {
				f.unheldTop += v
			} else {
				f.unheldRuns += v
			}
		}
		f.unheldSkipped = delta(r.unheldBefore, r.unheldAfter, "kck_refreshes_total", map[string]string{"outcome": "skipped"})
	}
	return f
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// base is v's run at one gateway, if any.
func (r *report) base(v string) *result { return r.find(v, 1) }

func (r *report) find(v string, n int) *result { return r.findRep(v, n, 0) }

// findRep is v's rep-th run at n (0: the first that did not fail).
func (r *report) findRep(v string, n, rep int) *result {
	for _, x := range r.runs {
		if x.v.name == v && x.n == n && x.err == nil && (rep == 0 || x.rep == rep) {
			return x
		}
	}
	return nil
}

// label names the run's code, and which repetition when there are more.
func (x *result) label() string {
	if x.rep > 1 {
		return fmt.Sprintf("%s (#%d)", x.v.label, x.rep)
	}
	return x.v.label
}

// markdown is the run's tables and verdicts.
func (r *report) markdown(c config) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	today := ""
	if r.todayCommit != "" {
		today = fmt.Sprintf("; today's code: commit %.7s", r.todayCommit)
	}
	p("Run %s UTC, %d cores, %s; load average %s before, %s after; %s in all%s. "+
		"**Taken on a busy 2-core machine shared with other work** (three Cassandra JVMs, PostgreSQL, NATS and every gateway on the same 2 cores): read the ratios, the absolute figures move from run to run.\n\n",
		r.started.UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), runtime.Version(), r.loadBefore, r.loadAfter, r.took.Round(time.Second), today)
	idle := "an idle baseline of the same length, measured just before each load with every gateway up, subtracted"
	if !c.baseline {
		idle = "no idle baseline subtracted"
	}
	p("Each run: %.0f changes/s for %s (%d changes to one title each of %d held authors, in turn), then %d changes to authors nobody reads; "+
		"every gateway holds title_list and author_stats of the %d authors and top_authors/10, and subscribes to the %d title lists; scheduler off. "+
		"CPU per change over the load and until the cluster settled, %s. Cassandra CPU: %s.\n\n",
		c.rate, c.dur, int(c.rate*c.dur.Seconds()), c.authors, c.unheld, c.authors, c.authors, idle, r.cassNote)
	for _, x := range r.runs {
		if x.err != nil {
			p("- **%s, %d gateway(s) failed**: %s\n", x.label(), x.n, firstLine(x.err.Error()))
		}
	}

	p("\nPer change, by gateway count (x 1 gw: against the same code's 1-gateway run):\n\n")
	p("| code | gateways | changes | primer runs | x 1 gw | store ops (read / write / lwt) | x 1 gw | lease waits | bus messages sent / received | Cassandra CPU | x 1 gw | Cassandra idle | gateway CPU | change-log connections |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.runs {
		if x.err != nil {
			continue
		}
		f := x.figures()
		var bf *figures
		if b := r.base(x.v.name); b != nil {
			g := b.figures()
			bf = &g
		}
		ops, opsX := "n/a (not counted)", "n/a"
		if f.opsOK {
			ops = fmt.Sprintf("%.2f (%.2f / %.2f / %.2f)", f.opsTotal, f.ops["read"], f.ops["write"], f.ops["lwt"])
			if bf != nil {
				opsX = ratio(f.opsTotal, bf.opsTotal)
			}
		}
		runsX, cassX := "", ""
		if bf != nil {
			runsX = ratio(f.runs, bf.runs)
			if f.cassOK && bf.cassOK {
				cassX = ratio(f.cassMS, bf.cassMS)
			}
		}
		bus := "none"
		if x.v.bus != "" {
			bus = fmt.Sprintf("%.2f / %.2f", f.sent, f.recv)
		}
		idle := "-"
		if x.idle != nil && x.idle.cassOK {
			idle = fmt.Sprintf("%.2f cores", x.idle.cass.Seconds()/x.idle.dur.Seconds())
		}
		p("| %s | %d | %.0f | %.2f | %s | %s | %s | %.2f | %s | %s | %s | %s | %.1f ms | %d |\n",
			x.label(), x.n, f.changes, f.runs, runsX, ops, opsX, f.leaseWaits, bus, cpuCell(f.cassMS, f.cassOK), cassX, idle, f.gwMS, x.followerConns)
	}

	if pairs := r.pairs(); len(pairs) > 0 {
		p("\nAgainst today's code at the same gateway count (ratio: new / today):\n\n")
		p("| gateways | primer runs today / new | ratio | lease waits today / new | Cassandra CPU today / new | ratio | push p99 today / new | change-log connections today / new |\n")
		p("|---|---|---|---|---|---|---|---|\n")
		for _, pr := range pairs {
			t, n := pr[0].figures(), pr[1].figures()
			cassR := "n/a"
			if t.cassOK && n.cassOK {
				cassR = ratio(n.cassMS, t.cassMS)
			}
			pair := strconv.Itoa(pr[0].n)
			if pr[0].rep > 1 {
				pair += fmt.Sprintf(" (#%d)", pr[0].rep)
			}
			p("| %s | %.2f / %.2f | %s | %.2f / %.2f | %s / %s | %s | %s / %s ms | %d / %d |\n", pair,
				t.runs, n.runs, ratio(n.runs, t.runs), t.leaseWaits, n.leaseWaits, cpuCell(t.cassMS, t.cassOK), cpuCell(n.cassMS, n.cassOK), cassR,
				msStr(quantile(pr[0].pushes.all, 0.99)), msStr(quantile(pr[1].pushes.all, 0.99)), pr[0].followerConns, pr[1].followerConns)
		}
	}

	p("\nCommit to subscriber, on every gateway (each change's push to each gateway's subscriber; \"others\": all but each change's first arrival, i.e. the gateways that learnt it from another; " +
		"change to stored: kck_source_fresh_lag_seconds, from the trigger's clock to the keys refreshed and stored, coarse buckets (x4); " +
		"the hop: kck_bus_lag_seconds, today kck_change_feed_lag_seconds, from the announcing gateway to the applying one; " +
		"the machine's 1-minute load average when the load started; write transactions open in other databases of the PostgreSQL server, sampled 4 times a second: the longest seen, and the share of samples with one open 100 ms or more):\n\n")
	p("| code | gateways | pushes | missed | p50 | p99 | max | others p50 | others p99 | worst gateway's p99 | change to stored p50 / p99 | hop p50 | hop p99 | load average | other write transactions |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.runs {
		if x.err != nil {
			continue
		}
		f, ps := x.figures(), x.pushes
		others50, others99 := "-", "-"
		if len(ps.others) > 0 {
			others50, others99 = msStr(quantile(ps.others, 0.5))+" ms", msStr(quantile(ps.others, 0.99))+" ms"
		}
		hop50, hop99 := "-", "-"
		if q, ok := f.hop.quantile(0.5); ok {
			hop50 = msStr(q) + " ms"
			q99, _ := f.hop.quantile(0.99)
			hop99 = msStr(q99) + " ms"
		}
		fresh := "-"
		if q50, ok := f.fresh.quantile(0.5); ok {
			q99, _ := f.fresh.quantile(0.99)
			fresh = fmt.Sprintf("%s / %s ms", msStr(q50), msStr(q99))
		}
		p("| %s | %d | %d | %d | %s ms | %s ms | %s ms | %s | %s | %s ms | %s | %s | %s | %s | %s ms, %.0f%% |\n", x.label(), x.n, len(ps.all), ps.missed,
			msStr(quantile(ps.all, 0.5)), msStr(quantile(ps.all, 0.99)), msStr(quantile(ps.all, 1)), others50, others99, msStr(ps.worstP99), fresh, hop50, hop99,
			x.loadAvg, msStr(x.otherXact), 100*x.otherXactShare)
	}

	p("\nWhere the primer runs go (per change, by product), and the changes to rows of authors nobody reads (no gateway holds or watches their keys; top_authors/10 is held everywhere, so it is refreshed):\n\n")
	p("| code | gateways | primer runs per change, by product | refreshes skipped per change | dispatches per change | bus resyncs | unheld: changes | unheld: primer runs of keys nobody holds | unheld: refreshes skipped | unheld: top_authors runs |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.runs {
		if x.err != nil {
			continue
		}
		f := x.figures()
		disp := "-"
		if len(f.dispatches) > 0 {
			disp = byLabel(f.dispatches, 1/f.changes)
		}
		resyncs := "-"
		if x.v.bus != "" {
			resyncs = fmt.Sprintf("%.0f", delta(x.before, x.after, "kck_bus_resyncs_total", nil))
		}
		p("| %s | %d | %s | %.2f | %s | %s | %d | %.0f | %.0f | %.0f |\n", x.label(), x.n, byLabel(f.runsBy, 1), f.skipped, disp, resyncs, x.unheld, f.unheldRuns, f.unheldSkipped, f.unheldTop)
	}

	p("\nTargets (issue 24), from this run:\n\n")
	for _, v := range r.verdicts() {
		p("- %s\n", v)
	}
	return b.String()
}

// pairs are today's runs with the new code's run at the same count.
func (r *report) pairs() [][2]*result {
	var out [][2]*result
	for _, t := range r.runs {
		if t.v.name != "today" || t.err != nil {
			continue
		}
		if n := r.findRep("new", t.n, t.rep); n != nil {
			out = append(out, [2]*result{t, n})
		}
	}
	return out
}

// verdicts judge the targets.
func (r *report) verdicts() []string {
	var out []string
	mark := func(ok bool, miss string) string {
		if ok {
			return "met"
		}
		return "**missed**" + miss
	}
	one := r.base("new")
	var top *result
	for _, x := range r.runs {
		if x.v.name == "new" && x.err == nil && (top == nil || x.n > top.n) {
			top = x
		}
	}
	if one != nil && top != nil && top.n > 1 {
		o, t := one.figures(), top.figures()
		x := t.runs / o.runs
		out = append(out, fmt.Sprintf("primer runs per change at %d gateways: %.2f against %.2f at 1, %.2fx (target <= 1.25x): %s",
			top.n, t.runs, o.runs, x, mark(x <= 1.25, by(x, 1.25))))
		if t.opsOK && o.opsOK {
			x := t.opsTotal / o.opsTotal
			out = append(out, fmt.Sprintf("store operations per change at %d gateways: %.2f against %.2f at 1, %.2fx (target <= 1.25x): %s",
				top.n, t.opsTotal, o.opsTotal, x, mark(x <= 1.25, by(x, 1.25))))
		}
		if top.n < 16 {
			out = append(out, fmt.Sprintf("(the targets name 16 gateways; this run's largest count is %d)", top.n))
		}
	} else {
		out = append(out, "primer runs and store operations per change, 16 against 1 gateway: not measured in this run")
	}
	var cpuRatios, runRatios []float64
	var cpuCells []string
	for _, pr := range r.pairs() {
		if pr[0].n != 1 {
			continue
		}
		tf, nf := pr[0].figures(), pr[1].figures()
		runRatios = append(runRatios, nf.runs/tf.runs)
		if tf.cassOK && nf.cassOK && tf.cassMS > 0 {
			cpuRatios = append(cpuRatios, nf.cassMS/tf.cassMS)
			cpuCells = append(cpuCells, fmt.Sprintf("%.1f / %.1f ms = %.2fx", nf.cassMS, tf.cassMS, nf.cassMS/tf.cassMS))
		}
	}
	switch {
	case len(runRatios) == 0:
		out = append(out, "Cassandra CPU per change at 1 gateway against today's code: not measured in this run")
	case len(cpuRatios) == 0:
		out = append(out, "Cassandra CPU per change at 1 gateway against today's: not measured (no Cassandra JVM found, or a node restarted)")
	default:
		x := median(cpuRatios)
		out = append(out, fmt.Sprintf("Cassandra CPU per change at 1 gateway, new / today's, %d interleaved pair(s): %s; median %.2fx (target <= 0.5x): %s",
			len(cpuRatios), strings.Join(cpuCells, ", "), x, mark(x <= 0.5, by(x, 0.5))))
	}
	if len(runRatios) > 0 {
		out = append(out, fmt.Sprintf("primer runs per change at 1 gateway, new / today's: median %.2fx of %d pair(s)", median(runRatios), len(runRatios)))
	}
	var runs, skipped, todayRuns float64
	counted := 0
	for _, x := range r.runs {
		if x.err != nil || x.unheld == 0 {
			continue
		}
		f := x.figures()
		if x.v.name == "new" {
			runs += f.unheldRuns
			skipped += f.unheldSkipped
			counted++
		} else {
			todayRuns += f.unheldRuns
		}
	}
	if counted > 0 {
		out = append(out, fmt.Sprintf("keys stored nowhere and watched by nobody, their rows changed: %.0f primer runs in %d runs of the new code, %.0f refreshes skipped (today's code: %.0f primer runs) (target 0): %s",
			runs, counted, skipped, todayRuns, mark(runs == 0, "")))
	}
	if x := r.find("new", 8); x != nil {
		all, others := quantile(x.pushes.all, 0.99), quantile(x.pushes.others, 0.99)
		out = append(out, fmt.Sprintf("push p99 at 8 gateways, commit to every subscriber: %s ms, to the gateways that did not refresh: %s ms, %d missed (target <= 50 ms): %s",
			msStr(all), msStr(others), x.pushes.missed, mark(all <= 50*time.Millisecond && x.pushes.missed == 0, byMS(all, 50*time.Millisecond))))
	} else {
		out = append(out, "push p99 at 8 gateways: not measured in this run")
	}
	var conns []string
	ok := true
	for _, x := range r.runs {
		if x.err == nil && x.v.name == "new" {
			conns = append(conns, fmt.Sprintf("%d at %d", x.followerConns, x.n))
			ok = ok && x.followerConns == 1
		}
	}
	if len(conns) > 0 {
		out = append(out, fmt.Sprintf("PostgreSQL connections following the change log: %s gateways (target 1 per cluster): %s", strings.Join(conns, ", "), mark(ok, "")))
	}
	return out
}

// smokeErrors is what a smoke run may not have: a failed run, a missed
// push, a computed key nobody holds, other than one follower.
func (r *report) smokeErrors(c config) error {
	var errs []error
	for _, x := range r.runs {
		name := fmt.Sprintf("%s, %d gateway(s)", x.label(), x.n)
		if x.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, x.err))
			continue
		}
		f := x.figures()
		if x.pushes.missed > 0 || len(x.pushes.all) == 0 {
			errs = append(errs, fmt.Errorf("%s: %d of %d pushes missed", name, x.pushes.missed, x.pushes.want))
		}
		if f.runs <= 0 {
			errs = append(errs, fmt.Errorf("%s: no primer run counted", name))
		}
		if x.v.name == "new" {
			if x.followerConns != 1 || x.leaders != 1 {
				errs = append(errs, fmt.Errorf("%s: %d change-log connections, %d leaders, want 1", name, x.followerConns, x.leaders))
			}
			if c.unheld > 0 && (f.unheldRuns != 0 || f.unheldSkipped == 0) {
				errs = append(errs, fmt.Errorf("%s: keys nobody holds: %.0f primer runs, %.0f refreshes skipped", name, f.unheldRuns, f.unheldSkipped))
			}
			if !f.opsOK {
				errs = append(errs, fmt.Errorf("%s: no store operations counted", name))
			}
		}
	}
	return errors.Join(errs...)
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func by(x, target float64) string {
	return fmt.Sprintf(" (by %.0f%%)", (x/target-1)*100)
}

func byMS(d, target time.Duration) string {
	if d <= target {
		return ""
	}
	return fmt.Sprintf(" (by %s ms)", msStr(d-target))
}

func cpuCell(v float64, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", v)
}

func msStr(d time.Duration) string { return fmt.Sprintf("%.1f", ms(d)) }

// byLabel writes "a 1.00, b 0.50" in label order, each value times k.
func byLabel(m map[string]float64, k float64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, l := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", l, m[l]*k))
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
