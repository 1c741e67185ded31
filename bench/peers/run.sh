#!/usr/bin/env bash
# make bench-peers: KCK against its peers (see bench/README.md, "KCK against
# its peers"), in one run, and the tables written into bench/README.md.
# Settings: PEERS_D (each closed-loop point, 5s), PEERS_OPEN_D (each open-loop
# point, PEERS_D), PEERS_ONLY (servers, default all), PEERS_MISS (first reads
# per store, 300). Uses KCK_POSTGRES_URL (or starts PostgreSQL) and
# KCK_CASSANDRA_HOSTS (or starts a one-node Cassandra).
set -euo pipefail
cd "$(dirname "$0")/../.."
./bench/peers/setup.sh
export KCK_POSTGRES_URL=${KCK_POSTGRES_URL:-$(./scripts/postgres/up.sh)}
export KCK_CASSANDRA_HOSTS=${KCK_CASSANDRA_HOSTS:-$(./scripts/cassandra/ensure.sh 1)}
export KCK_BUS_URL=${KCK_BUS_URL:-$(./scripts/nats/ensure.sh)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/kck" .
go build -o "$work/gqlpeer" ./bench/cmd/gqlpeer
go build -o "$work/peers" ./bench/cmd/peers
"$work/peers" -kck "$work/kck" -gqlpeer "$work/gqlpeer" -node-dir bench/peers \
	-d "${PEERS_D:-5s}" -open-d "${PEERS_OPEN_D:-${PEERS_D:-5s}}" -only "${PEERS_ONLY:-}" -miss "${PEERS_MISS:-300}" \
	-readme bench/README.md
