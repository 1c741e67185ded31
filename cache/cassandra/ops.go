package cassandra

import (
	"context"
	"strings"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/kck-go/kck/cache"
)

// opCounter counts every request the store's session sends, attempts,
// retries and speculative executions included (they cost the cluster as
// much), by kind: a statement with an IF condition is a lightweight
// transaction (a Paxos round), another SELECT a read, anything else a
// write; a batch counts as one write.
type opCounter struct {
	cache.OpCounts
	kinds sync.Map // statement -> kind
}

type opKind uint8

const (
	opRead opKind = iota
	opWrite
	opLWT
)

func kindOf(stmt string) opKind {
	s := strings.ToUpper(stmt)
	switch {
	case strings.Contains(s, " IF "):
		return opLWT
	case strings.HasPrefix(strings.TrimSpace(s), "SELECT"):
		return opRead
	}
	return opWrite
}

func (o *opCounter) ObserveQuery(_ context.Context, q gocql.ObservedQuery) {
	k, ok := o.kinds.Load(q.Statement)
	if !ok {
		k, _ = o.kinds.LoadOrStore(q.Statement, kindOf(q.Statement))
	}
	switch k.(opKind) {
	case opRead:
		o.Read(1)
	case opLWT:
		o.LWT(1)
	default:
		o.Write(1)
	}
}

func (o *opCounter) ObserveBatch(context.Context, gocql.ObservedBatch) { o.Write(1) }

// Ops counts the store's requests (cache.OpCounter).
func (s *Store) Ops() cache.StoreOps { return s.ops.Ops() }
