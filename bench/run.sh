#!/usr/bin/env bash
# Reproduces the figures in bench/README.md: the Go benchmarks (in-process
# hit path of Get and of the gateway against a plain handler, with auth and
# with tracing), then the load comparison over loopback between a running
# gateway and a plain net/http server writing the same bytes, and between
# gateways with tracing off and on, for the gateway on the embedded store, on
# Cassandra and on PostgreSQL; then each shared store's latency against raw
# statements on its table. Then the freshness lag and database pressure of SQL
# products on PostgreSQL, the refresh queue's cycle against one raw atomic
# write on each store, the miss path and warming 10,000 keys on each store,
# and the PostgreSQL store's table sizes after 1,000,000 refreshes.
# With BASE=<commit>, also the hit of this tree against that commit's, built
# here (the cost of a feature that is off). Starts a local Cassandra and
# PostgreSQL when none runs. Takes about fifteen
# minutes (PGSIZE_REFRESHES=100000 shortens the last step).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
LOAD_DURATION=${LOAD_DURATION:-8s}
LOAD_CONNS=${LOAD_CONNS:-64}

work=$(mktemp -d)
pids=()
# Gateways killed earlier are gone: a failing kill must not fail the run (set -e
# holds in the trap too).
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(go version | cut -d' ' -f3)"
echo "== Go benchmarks (benchtime $BENCHTIME)"
go test -run '^$' -bench 'BenchmarkGetHit|BenchmarkScrape' -benchmem -benchtime "$BENCHTIME" ./cache/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:'
go test -run '^$' -bench 'BenchmarkHit$' -benchmem -benchtime "$BENCHTIME" ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:' | tee "$work/hit.txt"
awk '/Hit\/static-/ {s=$3} /Hit\/gateway-[0-9]+[ \t]/ {g=$3} /Hit\/gateway-traced-1pct-/ {t=$3} END {if (s && g) printf "in-process: gateway hit %.0f ns/op, static %.0f ns/op: %.2fx static throughput\n", g, s, s/g
	if (g && t) printf "in-process: gateway hit with tracing on, 1%% sampled, %.0f ns/op: %.2fx tracing-off throughput\n", t, g/t}' "$work/hit.txt"
echo "== GraphQL hit, auth off against auth on (HS256, RS256 tokens), three interleaved rounds"
go test -run '^$' -bench 'BenchmarkHitAuth|BenchmarkAuthenticate' -benchmem -benchtime "$BENCHTIME" ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:' | tee "$work/auth.txt"
awk 'function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
	/HitAuth\/off/ {o[++no]=$3} /HitAuth\/hs256/ {h[++nh]=$3} /HitAuth\/rs256/ {r[++nr]=$3}
	END {if (no && nh && nr) { mo=med(o,no); mh=med(h,nh); mr=med(r,nr);
		printf "auth: medians off %.0f, HS256 %.0f, RS256 %.0f ns/op: HS256 %.2fx, RS256 %.2fx auth-off throughput\n", mo, mh, mr, mo/mh, mo/mr }}' "$work/auth.txt"

echo "== GraphQL hit, tracing off against on (1% of traces sampled; every trace), OTLP to a receiver in process, three rounds and interleaved"
go test -run '^$' -bench 'BenchmarkHitTracing' -benchmem -benchtime "$BENCHTIME" ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:' | tee "$work/tracing.txt"
awk 'function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
	/HitTracing\/off/ {o[++no]=$3; oc[no]=$5} /HitTracing\/sampled-1pct/ {p[++np]=$3; pc[np]=$5}
	END {if (no && np) { printf "tracing: medians off %.0f, 1%% sampled %.0f ns/op: %.2fx tracing-off throughput (thread CPU %.2fx)\n", med(o,no), med(p,np), med(o,no)/med(p,np), med(oc,no)/med(pc,np) }}' "$work/tracing.txt"

if [ -n "${BASE:-}" ]; then
	# BASE=<commit> make bench: this tree's hit against BASE's, both built
	# here, five alternating runs of each (what "tracing off costs what a
	# hit cost before tracing existed" was measured with).
	echo "== GraphQL hit (BenchmarkHitAuth/off), this tree against $BASE, five alternating runs"
	mkdir -p "$work/base"
	git archive "$BASE" | tar -x -C "$work/base"
	(cd "$work/base" && go test -c -o "$work/base.test" ./bench/)
	go test -c -o "$work/head.test" ./bench/
	for _ in 1 2 3 4 5; do
		for b in base head; do
			(cd bench && "$work/$b.test" -test.run '^$' -test.bench 'BenchmarkHitAuth/off$' -test.benchtime 300000x) | grep '^Benchmark' | head -1 | sed "s/^/$b /"
		done
	done | tee "$work/ab.txt"
	awk 'function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
			return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
		$1 == "base" {b[++nb]=$6} $1 == "head" {h[++nh]=$6}
		END {if (nb && nh) printf "hit, thread CPU: medians %s %.0f, this tree %.0f ns: %.2fx\n", "'"$BASE"'", med(b,nb), med(h,nh), med(b,nb)/med(h,nh)}' "$work/ab.txt"
fi

export KCK_CASSANDRA_HOSTS=${KCK_CASSANDRA_HOSTS:-$(./scripts/cassandra/ensure.sh 1)}
export KCK_BUS_URL=${KCK_BUS_URL:-$(./scripts/nats/ensure.sh)}
go build -o "$work/kck" .
go build -o "$work/hitload" ./bench/cmd/hitload
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_gateway() { # PORT ARGS...
	local port=$1; shift
	"$work/kck" serve --addr "127.0.0.1:$port" --data-dir "$work/data-$port" --log-level warn "$@" &
	pids+=($!)
	for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
	echo "gateway on $port did not become ready" >&2; exit 1
}

echo "== load over loopback, embedded store ($LOAD_CONNS connections, $LOAD_DURATION per run)"
port=$(free_port)
start_gateway "$port"
"$work/hitload" -gateway "http://127.0.0.1:$port" -c "$LOAD_CONNS" -d "$LOAD_DURATION"
kill "${pids[-1]}"

echo "== compression: compressed hits against identity hits and the static server's identity bytes, bytes on the wire (1 key, the 300-key query)"
go test -run '^$' -bench 'BenchmarkHitKeys' -benchmem -benchtime "$BENCHTIME" ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:'
port=$(free_port)
start_gateway "$port" --max-aliases 400 --max-root-fields 400 --max-fields 3000 --max-complexity 20000
for keys in 1 300; do for enc in gzip zstd; do
	"$work/hitload" -gateway "http://127.0.0.1:$port" -accept-encoding "$enc" -keys "$keys" -c "$LOAD_CONNS" -d "$LOAD_DURATION" -rounds 3
done; done
kill "${pids[-1]}"

echo "== load over loopback, auth off against auth on (HS256 and RS256 tokens), embedded store, three rounds"
secret=bench-secret-of-at-least-32-bytes-long
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
openssl pkey -in "$work/rsa.pem" -pubout -out "$work/rsa.pub"
off=$(free_port)
start_gateway "$off"
on=$(free_port)
start_gateway "$on" --auth-jwt-secret "$secret" --auth-public-key "$work/rsa.pub"
"$work/hitload" -gateway "http://127.0.0.1:$off" -auth-gateway "http://127.0.0.1:$on" -auth-secret "$secret" \
	-auth-rsa-key "$work/rsa.pem" -c "$LOAD_CONNS" -d "$LOAD_DURATION" -rounds 3
kill "${pids[-1]}" "${pids[-2]}"

echo "== load over loopback, tracing off against on: 1% sampled, every trace sampled, 1% with the collector down (embedded store, three rounds)"
sink=$(free_port)
"$work/hitload" otlp "127.0.0.1:$sink" &
pids+=($!)
off=$(free_port)
start_gateway "$off"
p1=$(free_port)
start_gateway "$p1" --otel-endpoint "http://127.0.0.1:$sink" --trace-sample-ratio 0.01
all=$(free_port)
start_gateway "$all" --otel-endpoint "http://127.0.0.1:$sink" --trace-sample-ratio 1
down=$(free_port)
start_gateway "$down" --otel-endpoint "http://127.0.0.1:$(free_port)" --trace-sample-ratio 0.01
"$work/hitload" -compare "off=http://127.0.0.1:$off,traced-1pct=http://127.0.0.1:$p1,traced-all=http://127.0.0.1:$all,collector-down-1pct=http://127.0.0.1:$down" \
	-c "$LOAD_CONNS" -d "$LOAD_DURATION" -rounds 3
curl -s "http://127.0.0.1:$down/metrics" | grep -E '^kck_trace_spans_(dropped|exported)' || true
kill "${pids[-1]}" "${pids[-2]}" "${pids[-3]}" "${pids[-4]}" "${pids[-5]}"

echo "== load over loopback, Cassandra store ($KCK_CASSANDRA_HOSTS)"
port=$(free_port)
start_gateway "$port" --store cassandra --cassandra-keyspace kck_bench --migrate
"$work/hitload" -gateway "http://127.0.0.1:$port" -c "$LOAD_CONNS" -d "$LOAD_DURATION"
kill "${pids[-1]}"

echo "== freshness pushed across gateways: a refresh on one, its subscriber on another (Cassandra, change feed)"
go build -o "$work/pushlag" ./bench/cmd/pushlag
port_a=$(free_port)
start_gateway "$port_a" --store cassandra --cassandra-keyspace kck_bench --migrate
port_b=$(free_port)
start_gateway "$port_b" --store cassandra --cassandra-keyspace kck_bench
"$work/pushlag" -gateway "http://127.0.0.1:$port_b" -refresh-on "http://127.0.0.1:$port_a"
kill "${pids[-1]}" "${pids[-2]}"

echo "== PostgreSQL sources: freshness lag and database pressure (the demo in database kck_test)"
pg_url=$(./scripts/postgres/up.sh | sed 's#/kck?#/kck_test?#')
go build -o "$work/freshlag" ./bench/cmd/freshlag
"$work/kck" demo load --postgres-url "$pg_url" >/dev/null
port=$(free_port)
start_gateway "$port" --postgres-url "$pg_url"
"$work/freshlag" -gateway "http://127.0.0.1:$port" -postgres-url "$pg_url"
"$work/pushlag" -gateway "http://127.0.0.1:$port" -postgres-url "$pg_url"
kill "${pids[-1]}"

echo "== load over loopback, PostgreSQL store (schema kck_bench of the demo database; $LOAD_CONNS connections, $LOAD_DURATION per run)"
port=$(free_port)
start_gateway "$port" --postgres-url "$pg_url" --store postgres --store-postgres-schema kck_bench --migrate
"$work/hitload" -gateway "http://127.0.0.1:$port" -c "$LOAD_CONNS" -d "$LOAD_DURATION"
kill "${pids[-1]}"

echo "== each shared store against raw statements on its table, same run"
go test -run '^$' -bench 'BenchmarkStore' -benchtime 2000x ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:'

echo "== boot warming on Cassandra: three gateways, new keys, a lease per key against a lease per bucket"
WARM_KEYS=${WARM_KEYS:-2000} go test -run '^$' -bench 'BenchmarkWarmCassandra' -benchtime 1x ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:'

echo "== the refresh queue: enqueue, claim, done against one raw atomic write, each store"
go test -run '^$' -bench 'BenchmarkQueue' -benchtime 1000x ./bench/ | grep -E '^(Benchmark|--- FAIL|FAIL|panic)|_test.go:'

echo "== the miss path on each store: the first read of title_list against its primer's SQL (database kck_peers)"
go run ./bench/cmd/peers -miss-only -postgres-url "$(./scripts/postgres/up.sh)" -only kck-embedded,kck-postgres,kck-cassandra -miss 300

echo "== warming and bulk refresh of 10,000 keys on each store"
KCK_POSTGRES_URL="$(./scripts/postgres/up.sh)" go run ./bench/cmd/warmrate -stores embedded,postgres,cassandra -keys 10000

echo "== the PostgreSQL store's tables after ${PGSIZE_REFRESHES:-1000000} refreshes of 1,000 keys through the queue"
go run ./bench/cmd/pgsize -queue -refreshes "${PGSIZE_REFRESHES:-1000000}" -postgres-url "$(./scripts/postgres/up.sh)"

echo "== the cost curve: 1,000 to 1,000,000 cached products of ~1 KB on the embedded store"
go run ./bench/cmd/costcurve -keys "${COST_KEYS:-1000,100000,1000000}"
