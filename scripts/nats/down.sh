#!/usr/bin/env bash
# Stops the NATS server scripts/nats/ensure.sh started.
set -euo pipefail
cd "$(dirname "$0")/../.."
pidfile=${KCK_NATS_DIR:-$PWD/.cache/nats}/nats.pid
if [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null; then
	for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
	echo "[nats] stopped" >&2
fi
rm -f "$pidfile"
