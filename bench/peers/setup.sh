#!/usr/bin/env bash
# Installs what bench/peers needs: wrk (Debian's, when absent) and the Node
# peers at their locked versions (npm ci, skipped when node_modules is newer
# than the lockfile).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v wrk >/dev/null; then
	if [ "$(id -u)" = 0 ]; then s=""; else s=sudo; fi
	$s apt-get install -y wrk >/dev/null || { $s apt-get update >/dev/null && $s apt-get install -y wrk >/dev/null; }
fi
for d in . postgraphile; do
	if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
		(cd "$d" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules)
	fi
done
