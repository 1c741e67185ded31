// Package collector registers Prometheus collectors that several instances
// in one process share: two queue workers or two schedulers in one test
// binary (or one gateway process) count into the same series.
package collector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector of the same kind
// already registered under its name, so that instances share the series.
// Any other refusal (another kind or help text under the name) is an error.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
