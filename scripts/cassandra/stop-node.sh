#!/usr/bin/env bash
# Stops one node of the cluster started by up.sh, keeping its data.
#   scripts/cassandra/stop-node.sh N          SIGTERM (graceful: peers see it leave at once)
#   scripts/cassandra/stop-node.sh N --kill   SIGKILL (a crash: peers convict it in ~10 s)
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 NODE [--kill]" >&2; exit 64; }
node=$1
shift
exec "$(dirname "${BASH_SOURCE[0]}")/down.sh" --node "$node" "$@"
