// Package cassandratest gives tests a real Cassandra: the cluster named by
// KCK_CASSANDRA_HOSTS (make test sets it), or one answering on 127.0.0.1:9042,
// or else a 3-node cluster it starts with scripts/cassandra/ensure.sh (and
// leaves running for the next test binary; `make cassandra-down` stops it). Tests are never skipped for want
// of Cassandra.
package cassandratest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kck-go/kck/cache/cassandra"
	"github.com/kck-go/kck/internal/scriptrun"
)

var (
	once  sync.Once
	hosts []string
	err   error
)

// Hosts returns contact points of a running cluster, starting a node when
// none answers.
func Hosts(t testing.TB) []string {
	t.Helper()
	once.Do(func() {
		if env := cassandra.ConfigFromEnv().Hosts; len(env) > 0 {
			hosts = env
			return
		}
		if c, e := net.DialTimeout("tcp", "127.0.0.1:9042", time.Second); e == nil {
			c.Close()
			hosts = []string{"127.0.0.1:9042"}
			return
		}
		out, e := scriptrun.Output("scripts/cassandra/ensure.sh", "3")
		if e != nil {
			err = e
			return
		}
		hosts = strings.Split(out, ",")
	})
	if err != nil {
		t.Fatalf("cassandra: %v", err)
	}
	return hosts
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
	var b [4]byte
	_, _ = rand.Read(b[:])
	cfg.Keyspace = "kck_test_" + hex.EncodeToString(b[:])
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
