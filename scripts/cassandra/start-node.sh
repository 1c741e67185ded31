#!/usr/bin/env bash
# (Re)starts one node of the cluster started by up.sh with its existing data, waits
# until it answers CQL and, for a multi-node cluster, until every running node sees
# it (and every other running node) alive.
#   scripts/cassandra/start-node.sh N
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || c_die "usage: $0 NODE"
n=$1
c_check_node_arg "$n"
size=$(c_cluster_size)
((n <= size)) || c_die "node$n is not part of the cluster in $KCK_C_RUN_DIR (nodes: $size); run up.sh first"
c_find_java
c_lock
c_fetch_jars
c_build_tools
if pid=$(c_node_pid "$n"); then
	c_log "node$n already runs (pid $pid)"
else
	c_launch "$n"
	c_wait_ready "$n"
fi
c_wait_cluster 120
