#!/usr/bin/env bash
# (Re)starts nodes of the cluster started by up.sh with their existing data, all at
# once, waits until each answers CQL and, for a multi-node cluster, until every
# running node sees the others alive.
#   scripts/cassandra/start-node.sh N [N ...]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 1)) || c_die "usage: $0 NODE [NODE ...]"
size=$(c_cluster_size)
for n in "$@"; do
	c_check_node_arg "$n"
	((n <= size)) || c_die "node$n is not part of the cluster in $KCK_C_RUN_DIR (nodes: $size); run up.sh first"
done
c_find_java
c_lock
c_fetch_jars
c_build_tools
launched=()
for n in "$@"; do
	if pid=$(c_node_pid "$n"); then
		c_log "node$n already runs (pid $pid)"
	else
		c_launch "$n"
		launched+=("$n")
	fi
done
for n in "${launched[@]}"; do
	c_wait_ready "$n"
done
c_wait_cluster "$KCK_C_TIMEOUT"
