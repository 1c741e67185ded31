#!/usr/bin/env bash
# Stops the local Cassandra nodes started by up.sh: SIGTERM, then SIGKILL after 30 s.
#   scripts/cassandra/down.sh                 all nodes
#   scripts/cassandra/down.sh --node 2        only node 2 (its data is kept: start-node.sh 2)
#   scripts/cassandra/down.sh [--node N] --kill   SIGKILL at once (simulates a crash)
# Exits 0 once none of the selected nodes runs. Data stays until the next up.sh.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

only="" kill=()
while (($# > 0)); do
	case $1 in
	--node)
		[[ $# -ge 2 ]] || c_die "--node needs a node number"
		only=$2
		shift 2
		;;
	--node=*)
		only=${1#--node=}
		shift
		;;
	--kill)
		kill=(--kill)
		shift
		;;
	-h | --help)
		sed -n '2,7p' "$0"
		exit 0
		;;
	*) c_die "unknown argument '$1' (usage: $0 [--node N] [--kill])" ;;
	esac
done

c_lock
if [[ -n $only ]]; then
	c_check_node_arg "$only"
	targets=("$only")
else
	mapfile -t targets < <(c_known_nodes)
fi

running=()
for n in "${targets[@]}"; do
	if c_node_pid "$n" >/dev/null; then
		running+=("$n")
	else
		rm -f "$(c_pid_file "$n")"
	fi
done
if ((${#running[@]} == 0)); then
	c_log "no Cassandra node running${only:+ as node$only} (run dir $KCK_C_RUN_DIR)"
	exit 0
fi
c_stop_nodes "${kill[@]}" "${running[@]}"
for n in "${running[@]}"; do
	c_node_pid "$n" >/dev/null && c_die "node$n is still running"
done
c_log "stopped: ${running[*]/#/node}"
