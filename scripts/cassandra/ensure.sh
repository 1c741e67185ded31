#!/usr/bin/env bash
# Makes sure a local Cassandra cluster of at least NODES nodes (default 3) runs
# and answers CQL: reuses the running one, else starts a fresh one with up.sh.
# Prints the contact points on stdout, like up.sh.
#   KCK_CASSANDRA_HOSTS=$(scripts/cassandra/ensure.sh 3) go test ./...
set -euo pipefail
dir="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=lib.sh
source "$dir/lib.sh"

nodes=${1:-3}
if (($(c_cluster_size) >= nodes)) && "$dir/status.sh" >/dev/null 2>&1; then
	c_log "reusing the running cluster of $(c_cluster_size) node(s)"
	c_contact_points
	exit 0
fi
exec "$dir/up.sh" "$nodes"
