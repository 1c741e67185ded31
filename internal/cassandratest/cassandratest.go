// Package cassandratest gives tests a real Cassandra: the cluster named by
// KCK_CASSANDRA_HOSTS (make test sets it), or one answering on 127.0.0.1:9042,
// or else a 3-node cluster it starts with scripts/cassandra/ensure.sh (and
// leaves running for the next test binary; `make cassandra-down` stops it). Tests are never skipped for want
// of Cassandra.
package cassandratest

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/scriptrun"
)

var cluster = &scriptrun.Service{
	Name: "cassandra",
	Find: func() string {
		if env := cassandra.ConfigFromEnv().Hosts; len(env) > 0 {
			return strings.Join(env, ",")
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:9042", time.Second); err == nil {
			c.Close()
			return "127.0.0.1:9042"
		}
		return ""
	},
	Script: "scripts/cassandra/ensure.sh",
	Args:   []string{"3"},
}

// Hosts returns contact points of a running cluster, starting one when
// none answers.
func Hosts(t testing.TB) []string {
	t.Helper()
	return strings.Split(cluster.Addr(t), ",")
}

// Config is a configuration for the running cluster with no keyspace set.
func Config(t testing.TB) cassandra.Config {
	return cassandra.Config{Hosts: Hosts(t), Consistency: os.Getenv("KCK_CASSANDRA_CONSISTENCY")}
}

// Keyspace migrates a fresh keyspace for one test and drops it at cleanup.
// Its replication factor is rf, by default the number of contact points up
// to 3, so that tests keep working while one node of a 3-node cluster is
// stopped by the node-loss test.
func Keyspace(t testing.TB, rf ...int) cassandra.Config {
	t.Helper()
	cfg := Config(t)
	cfg.Keyspace = scriptrun.UniqueName("kck_test_")
	r := cassandra.Replication{Factor: min(3, len(cfg.Hosts))}
	if len(rf) > 0 {
		r.Factor = rf[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cfg, r); err != nil {
		t.Fatalf("migrate %s: %v", cfg.Keyspace, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cassandra.DropKeyspace(ctx, cfg); err != nil {
			t.Logf("drop %s: %v", cfg.Keyspace, err)
		}
	})
	return cfg
}
