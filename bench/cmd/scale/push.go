package main

import (
	"slices"
	"time"
)

// pushStats is the commit-to-subscriber latency of a load's changes on
// every gateway.
type pushStats struct {
	// all: every (change, gateway) delivered; others: all but each
	// change's first arrival (the gateway that refreshed it, most likely:
	// the others learnt it from the bus or the feed). Sorted.
	all, others []time.Duration
	// worstP99 is the largest of the gateways' own p99s.
	worstP99 time.Duration
	// missed counts (change, gateway) pairs never pushed, not even as part
	// of a newer version; want counts them all.
	missed, want int
}

// pushesOf measures each change on each subscriber: from its commit to
// the first push of a title list showing it or a newer change of the same
// author (a subscriber gets the newest version, not every one).
func pushesOf(subs []*subscriber, changes []change) pushStats {
	var p pushStats
	perGateway := make([][]time.Duration, len(subs))
	for _, ch := range changes {
		var lat []time.Duration
		for i, s := range subs {
			p.want++
			at, ok := s.delivered(ch.author, ch.seq)
			if !ok {
				p.missed++
				continue
			}
			d := max(0, at.Sub(ch.at))
			lat = append(lat, d)
			perGateway[i] = append(perGateway[i], d)
		}
		if len(lat) == 0 {
			continue
		}
		slices.Sort(lat)
		p.all = append(p.all, lat...)
		p.others = append(p.others, lat[1:]...)
	}
	slices.Sort(p.all)
	slices.Sort(p.others)
	for _, g := range perGateway {
		slices.Sort(g)
		p.worstP99 = max(p.worstP99, quantile(g, 0.99))
	}
	return p
}

// quantile of sorted durations (nearest rank); 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
