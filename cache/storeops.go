package cache

// StoreOps counts a store's round trips by kind, so that the cost of a
// change can be read from /metrics rather than guessed.
type StoreOps struct {
	// Reads are plain reads (a Get, the version read of a Put, a scan page).
	Reads uint64
	// Writes are plain writes (a Put, a Delete, a batch).
	Writes uint64
	// LWTs are conditional writes that need consensus or a row lock on
	// the store's side: Cassandra's lightweight transactions (Paxos), a
	// PostgreSQL statement that locks a row to decide (leases, queue
	// claims), a bbolt read-write transaction that decides on what it read.
	LWTs uint64
}

// OpCounter is implemented by stores that count their operations.
type OpCounter interface {
	Ops() StoreOps
}
