#!/usr/bin/env bash
# Starts a fresh local Apache Cassandra 5.0 test cluster of NODES nodes (default 1)
# on 127.0.0.1..127.0.0.NODES (shifted by KCK_CASSANDRA_NODE_BASE), CQL port 9042, one after another, and returns once
# every node answers CQL (and, for NODES > 1, every node sees all the others).
# Any cluster started before from the same run dir is stopped and its data wiped.
#   scripts/cassandra/up.sh [NODES]
# See docs/cassandra.md for the environment variables (KCK_CASSANDRA_*).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nodes=${1:-1}
[[ $nodes =~ ^[1-9]$ ]] || c_die "usage: $0 [NODES]  (NODES 1..$KCK_C_MAX_NODES, default 1)"
t_start=$SECONDS
c_lock

c_find_java
c_fetch_jars
c_build_tools

# Stop whatever a previous up.sh left running from this run dir.
mapfile -t old < <(c_known_nodes)
running=()
for n in "${old[@]}"; do
	c_node_pid "$n" >/dev/null && running+=("$n")
done
if ((${#running[@]} > 0)); then
	# SIGKILL: their data is wiped just below, a graceful drain would only cost time.
	c_log "stopping ${#running[@]} node(s) left running by a previous up.sh: ${running[*]/#/node}"
	c_stop_nodes --kill "${running[@]}"
fi

# Fresh cluster: wipe the old node dirs (only node* and our files: the run dir may be
# user-provided).
rm -rf "$KCK_C_RUN_DIR"/node[1-9] "$KCK_C_RUN_DIR/nodes"
mkdir -p "$KCK_C_RUN_DIR"
echo "$nodes" >"$KCK_C_RUN_DIR/nodes"
for ((n = 1; n <= nodes; n++)); do
	c_write_node_config "$n" "$nodes"
done
c_log "Cassandra $KCK_C_VERSION, $nodes node(s), heap $(c_default_heap "$nodes") each, java $KCK_C_JAVA, run dir $KCK_C_RUN_DIR"

for ((n = 1; n <= nodes; n++)); do
	c_launch "$n"
	c_wait_ready "$n"
done
c_wait_cluster "$KCK_C_TIMEOUT"

summary=()
for ((n = 1; n <= nodes; n++)); do
	pid=$(c_node_pid "$n")
	summary+=("node$n pid $pid RSS $(c_rss_mib "$pid") MiB")
done
c_log "all $nodes node(s) ready in $((SECONDS - t_start)) s: $(IFS=,; echo "${summary[*]}" | sed 's/,/, /g')"
c_log "contact points: $(c_contact_points)   (stop: scripts/cassandra/down.sh)"
# The contact points on stdout, for scripts: CP=$(scripts/cassandra/up.sh 3)
c_contact_points
