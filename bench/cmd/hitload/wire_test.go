package main

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/bolt"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/primers"
)

// TestMain lets the test binary be hitload's static child as well.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == "static" {
		serveStatic(os.Args[2], os.Args[3])
		return
	}
	os.Exit(m.Run())
}

// A smoke run of -accept-encoding (not timed): a real gateway on the demo
// products, each coding, 1 and 300 keys, a fraction of a second each. It
// exits the test binary non-zero if a response is wrong.
func TestCompareWireSmoke(t *testing.T) {
	store, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := primers.NewRegistry()
	if err := demo.Register(reg, demo.NewDataset()); err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	c, err := cache.New(cache.Options{Registry: reg, Store: store, Registerer: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// The 300-key query's document limits, as bench/README.md starts kck.
	g, err := gateway.New(gateway.Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: metrics, Gatherer: metrics, MaxMissesPerRequest: -1,
		Limits: gqlhttp.Limits{MaxAliases: 400, MaxRootFields: 400, MaxFields: 3000, MaxComplexity: 20000}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	compareWire(srv.URL, "gzip", 300, 8, 300*time.Millisecond, 1, 300)
	compareWire(srv.URL, "zstd", 1, 8, 300*time.Millisecond, 1, 30)
}
