#!/usr/bin/env bash
# Reproduces the figures in bench/README.md: the Go benchmarks (in-process
# hit path of Get and of the gateway against a plain handler), then the load
# comparison over loopback between a running gateway and a plain net/http
# server writing the same bytes. Takes about a minute and a half.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
LOAD_DURATION=${LOAD_DURATION:-8s}
LOAD_CONNS=${LOAD_CONNS:-64}

work=$(mktemp -d)
gw_pid=
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(go version | cut -d' ' -f3)"
echo "== Go benchmarks (benchtime $BENCHTIME)"
go test -run '^$' -bench 'BenchmarkGetHit' -benchmem -benchtime "$BENCHTIME" ./cache/ | grep -E '^Benchmark'
go test -run '^$' -bench 'BenchmarkHit' -benchmem -benchtime "$BENCHTIME" ./bench/ | grep -E '^Benchmark' | tee "$work/hit.txt"
awk '/static/ {s=$3} /gateway/ {g=$3} END {if (s && g) printf "in-process: gateway hit %.0f ns/op, static %.0f ns/op: %.2fx static throughput\n", g, s, s/g}' "$work/hit.txt"

echo "== load over loopback ($LOAD_CONNS connections, $LOAD_DURATION per run)"
go build -o "$work/kck" .
go build -o "$work/hitload" ./bench/cmd/hitload
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
"$work/kck" serve --addr "127.0.0.1:$port" --data-dir "$work/data" --log-level warn &
gw_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
"$work/hitload" -gateway "http://127.0.0.1:$port" -c "$LOAD_CONNS" -d "$LOAD_DURATION"
