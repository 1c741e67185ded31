#!/usr/bin/env bash
# Shows which local Cassandra nodes run and answer CQL. Exit 0 when every node of
# the cluster runs and answers, 3 otherwise (also when there is no cluster).
#   scripts/cassandra/status.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

size=$(c_cluster_size)
if ((size == 0)); then
	echo "no cluster in $KCK_C_RUN_DIR (run scripts/cassandra/up.sh)"
	exit 3
fi
c_find_java
c_build_tools
bad=0
printf '%-6s %-10s %-8s %-9s %-8s %s\n' NODE ADDRESS PID RSS_MiB CQL PEERS
for ((n = 1; n <= size; n++)); do
	addr=$(c_node_addr "$n")
	if pid=$(c_node_pid "$n"); then
		rss=$(c_rss_mib "$pid")
		if v=$(KCK_C_CQL_TIMEOUT=3 c_cql "$n" "SELECT release_version FROM system.local" 2>/dev/null); then
			peers=$(KCK_C_CQL_TIMEOUT=3 c_cql "$n" -q "SELECT peer FROM system.peers_v2" 2>/dev/null || echo "?")
		else
			v="no" peers="-"
			bad=1
		fi
	else
		pid="-" rss="-" v="down" peers="-"
		bad=1
	fi
	printf '%-6s %-10s %-8s %-9s %-8s %s\n' "node$n" "$addr" "$pid" "$rss" "$v" "$peers"
done
echo "contact points: $(c_contact_points)   run dir: $KCK_C_RUN_DIR"
exit $((bad ? 3 : 0))
