// Package faults is KCK's fault suite: each scenario runs real gateway
// processes (the kck binary) against the suite's own PostgreSQL cluster,
// 3-node Cassandra cluster (started when a scenario first needs it) and NATS
// server on loopback, under a fixed-rate read load and, where it fits, a
// write load, injects one fault (a node SIGKILLed, Postgres stopped, a store
// slowed down, a disk filled, a gateway killed, the change bus killed or cut
// off, the PostgreSQL store's database stopped) and asserts the outcome the
// scenario states. The same runs give the figures of docs/reliability.md.
//
// The tests are behind the build tag "faults" (they start and kill clusters):
// `make faults` runs the full form and writes docs/reliability.md, `make
// faults-ci` the short one (a 30 s soak). Nothing here runs under a plain
// `go test ./...`.
package faults
