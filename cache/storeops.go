package cache

import "sync/atomic"

// StoreOps counts a store's round trips by kind, so that the cost of a
// change can be read from /metrics rather than guessed.
type StoreOps struct {
	// Reads are plain reads (a Get, the version read of a Put, a scan page).
	Reads uint64
	// Writes are plain writes (a Put, a Delete, a batch).
	Writes uint64
	// LWTs are the writes that decide on what they read under consensus
	// or a lock, for a lease or a queue claim: Cassandra's lightweight
	// transactions (Paxos rounds), a PostgreSQL statement that locks a row
	// to decide, the embedded store's lease and claim transactions.
	LWTs uint64
}

// OpCounter is implemented by stores that count their operations.
type OpCounter interface {
	Ops() StoreOps
}

// OpCounts is an OpCounter for a store to embed.
type OpCounts struct{ reads, writes, lwts atomic.Uint64 }

// Read counts n reads.
func (o *OpCounts) Read(n int) { o.reads.Add(uint64(n)) }

// Write counts n writes.
func (o *OpCounts) Write(n int) { o.writes.Add(uint64(n)) }

// LWT counts n lightweight transactions.
func (o *OpCounts) LWT(n int) { o.lwts.Add(uint64(n)) }

// Ops returns the counts so far.
func (o *OpCounts) Ops() StoreOps {
	return StoreOps{Reads: o.reads.Load(), Writes: o.writes.Load(), LWTs: o.lwts.Load()}
}
