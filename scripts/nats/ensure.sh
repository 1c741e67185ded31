#!/usr/bin/env bash
# Makes sure a local NATS server runs for the cluster's change bus (cache/nats)
# and prints its URL on stdout, as the Postgres and Cassandra scripts do:
#   export KCK_BUS_URL=$(scripts/nats/ensure.sh)
# The server is built from its Go module (the version go.mod pins as a tool),
# never downloaded as a release binary. Idempotent: a server already
# answering on the port is reused. Stop it with scripts/nats/down.sh.
set -euo pipefail
log() { printf '[nats %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cd "$(dirname "$0")/../.."
PORT=${KCK_NATS_PORT:-4222}
MONITOR=${KCK_NATS_MONITOR_PORT:-8222}
dir=${KCK_NATS_DIR:-$PWD/.cache/nats}
bin=$dir/nats-server
url="nats://127.0.0.1:$PORT"
mkdir -p "$dir"

# A NATS server greets every connection with an INFO line.
answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -c 4 <&3" 2>/dev/null | grep -q INFO; }

if answers; then
	echo "$url"
	exit 0
fi
want=$(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
if [[ ! -x $bin ]] || [[ "$("$bin" --version 2>/dev/null)" != "nats-server: $want" ]]; then
	log "building nats-server $want from its Go module"
	go build -o "$bin" github.com/nats-io/nats-server/v2
fi
log "starting nats-server $want on 127.0.0.1:$PORT (monitoring on :$MONITOR)"
nohup "$bin" -a 127.0.0.1 -p "$PORT" -m "$MONITOR" -P "$dir/nats.pid" >"$dir/nats.log" 2>&1 &
for _ in $(seq 100); do answers && break; sleep 0.1; done
answers || die "nats-server does not answer on $url (log: $dir/nats.log)"
log "ready: $url"
echo "$url"
