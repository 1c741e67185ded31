# shellcheck shell=bash
# Shared helpers for the local Cassandra test-cluster scripts (sourced, not run).
# See docs/cassandra.md. Everything lives under the repo's ignored .cache/ folder:
#   .cache/cassandra/lib    jars (filled by fetch.sh from Maven Central)
#   .cache/cassandra/tools  CqlPing.class (compiled from scripts/cassandra/CqlPing.java)
#   .cache/cassandra/run    node1..nodeN (config, data, logs, pid), wiped by up.sh
#
# Environment:
#   KCK_CASSANDRA_RUN_DIR    node data root (default .cache/cassandra/run)
#   KCK_CASSANDRA_CACHE_DIR  jar/tool cache  (default .cache/cassandra)
#   KCK_CASSANDRA_HEAP       heap per node (default 1G for 1 node, 768M for 2+ nodes)
#   KCK_CASSANDRA_TIMEOUT    seconds to wait for a node to answer CQL (default 180)
#   KCK_CASSANDRA_JMX        1 = JMX on 127.0.0.1:(7190+base+i) for nodetool.sh (default 1), 0 = off
#   KCK_CASSANDRA_NODE_BASE  node i listens on 127.0.0.(base+i) (default 0: 127.0.0.1..N), so a
#                            second cluster (own run dir, e.g. base 10) runs beside the first
#   KCK_CASSANDRA_JAVA       java binary to use (must be Java 17)

KCK_C_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
KCK_C_REPO_ROOT=$(cd "$KCK_C_SCRIPT_DIR/../.." && pwd -P)
KCK_C_CACHE_DIR=${KCK_CASSANDRA_CACHE_DIR:-$KCK_C_REPO_ROOT/.cache/cassandra}
KCK_C_LIB_DIR=$KCK_C_CACHE_DIR/lib
KCK_C_TOOLS_DIR=$KCK_C_CACHE_DIR/tools
KCK_C_RUN_DIR=${KCK_CASSANDRA_RUN_DIR:-$KCK_C_CACHE_DIR/run}
KCK_C_TIMEOUT=${KCK_CASSANDRA_TIMEOUT:-180}
KCK_C_JMX=${KCK_CASSANDRA_JMX:-1}
KCK_C_POM=$KCK_C_SCRIPT_DIR/pom.xml
# The one pinned version lives in pom.xml.
KCK_C_VERSION=$(sed -n 's:.*<cassandra.version>\([^<]*\)</cassandra.version>.*:\1:p' "$KCK_C_POM")
KCK_C_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
KCK_C_MAX_NODES=9
KCK_C_NODE_BASE=${KCK_CASSANDRA_NODE_BASE:-0}

c_log() { printf '[cassandra %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
c_die() { c_log "ERROR: $*"; exit 1; }

[[ $KCK_C_NODE_BASE =~ ^[0-9]+$ ]] && ((KCK_C_NODE_BASE + KCK_C_MAX_NODES <= 254)) ||
	c_die "KCK_CASSANDRA_NODE_BASE must be a number 0..$((254 - KCK_C_MAX_NODES)), got '$KCK_C_NODE_BASE'"

# Make the run dir absolute (it is baked into configs and process markers).
case $KCK_C_RUN_DIR in
/*) ;;
*) KCK_C_RUN_DIR=$PWD/$KCK_C_RUN_DIR ;;
esac
KCK_C_RUN_DIR=${KCK_C_RUN_DIR%/}

c_node_dir() { printf '%s/node%s' "$KCK_C_RUN_DIR" "$1"; }
c_node_addr() { printf '127.0.0.%s' $((KCK_C_NODE_BASE + $1)); }
c_pid_file() { printf '%s/cassandra.pid' "$(c_node_dir "$1")"; }
c_jmx_port() { printf '%s' $((7190 + KCK_C_NODE_BASE + $1)); }
# A cluster on another base gets its own name too: should its seed ever point at
# another cluster's node, gossip refuses it instead of joining the two.
c_cluster_name() { if ((KCK_C_NODE_BASE == 0)); then echo kck-test; else echo "kck-test-b$KCK_C_NODE_BASE"; fi; }

c_check_node_arg() {
	[[ ${1:-} =~ ^[1-9]$ ]] || c_die "node must be a number 1..$KCK_C_MAX_NODES, got '${1:-}'"
}

# Number of nodes of the current cluster (written by up.sh), 0 if none.
c_cluster_size() {
	if [[ -f $KCK_C_RUN_DIR/nodes ]]; then cat "$KCK_C_RUN_DIR/nodes"; else echo 0; fi
}

# Serializes up/down/start-node runs on one run dir (fd 9; never inherited by a node).
c_lock() {
	mkdir -p "$KCK_C_RUN_DIR"
	exec 9>"$KCK_C_RUN_DIR/.lock"
	if ! flock -n 9; then
		c_log "another up/down/start-node is running on $KCK_C_RUN_DIR: waiting for it"
		flock -w 900 9 || c_die "still locked after 900 s: $KCK_C_RUN_DIR/.lock"
	fi
}

# ---- java -----------------------------------------------------------------

c_java_major() { # JAVA -> major version on stdout
	"$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | head -n1
}

# Cassandra 5.0 runs on Java 11 or 17; the flags below are the Java 17 ones.
c_find_java() {
	[[ -n ${KCK_C_JAVA:-} ]] && return 0
	local cand
	for cand in ${KCK_CASSANDRA_JAVA:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
		[[ -n $cand && -x $cand ]] || continue
		if [[ $(c_java_major "$cand") == 17 ]]; then
			KCK_C_JAVA=$cand
			return 0
		fi
		[[ -n ${KCK_CASSANDRA_JAVA:-} && $cand == "$KCK_CASSANDRA_JAVA" ]] && c_die "KCK_CASSANDRA_JAVA=$cand is not Java 17"
	done
	c_die "no Java 17 found (set KCK_CASSANDRA_JAVA or JAVA_HOME); Cassandra 5.0 needs Java 17 here"
}

# ---- jars and tools --------------------------------------------------------

c_lib_stamp() { printf '%s/.complete' "$KCK_C_LIB_DIR"; }

c_lib_stamp_content() {
	printf 'cassandra-all %s\npom %s\n' "$KCK_C_VERSION" "$(cksum <"$KCK_C_POM" | cut -d' ' -f1)"
}

c_lib_ok() {
	[[ -f $(c_lib_stamp) && "$(cat "$(c_lib_stamp)")" == "$(c_lib_stamp_content)" ]] &&
		[[ -f $KCK_C_LIB_DIR/cassandra-all-$KCK_C_VERSION.jar ]]
}

c_fetch_jars() {
	c_lib_ok && return 0
	command -v mvn >/dev/null || c_die "mvn not found: Maven is needed once to fetch the Cassandra jars"
	local tmp=$KCK_C_LIB_DIR.tmp.$$ t0=$SECONDS
	c_log "fetching cassandra-all $KCK_C_VERSION and its runtime jars with Maven into $KCK_C_LIB_DIR"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# Output to a log, shown only on failure (Maven 3.8 prints colour codes even with -B -q).
	if ! mvn -B -q -f "$KCK_C_POM" "$KCK_C_DEP_PLUGIN:copy-dependencies" \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
		sed 's/\x1b\[[0-9;]*m//g' "$tmp.log" | tail -n 40 >&2
		rm -rf "$tmp" "$tmp.log"
		c_die "mvn copy-dependencies failed (network to Maven Central? output above)"
	fi
	rm -f "$tmp.log"
	[[ -f $tmp/cassandra-all-$KCK_C_VERSION.jar ]] || {
		rm -rf "$tmp"
		c_die "cassandra-all-$KCK_C_VERSION.jar missing after mvn"
	}
	c_lib_stamp_content >"$tmp/.complete"
	rm -rf "$KCK_C_LIB_DIR"
	mv "$tmp" "$KCK_C_LIB_DIR"
	c_log "jars ready: $(find "$KCK_C_LIB_DIR" -name '*.jar' | wc -l) jars, $(du -sh "$KCK_C_LIB_DIR" | cut -f1), $((SECONDS - t0)) s"
}

# Compiles CqlPing.java once (keyed by its checksum) into the tools dir.
c_build_tools() {
	c_find_java
	local src=$KCK_C_SCRIPT_DIR/CqlPing.java sum
	sum=$(cksum <"$src" | cut -d' ' -f1)
	KCK_C_PING_DIR=$KCK_C_TOOLS_DIR/cqlping-$sum
	[[ -f $KCK_C_PING_DIR/CqlPing.class ]] && return 0
	local javac
	javac=$(dirname "$KCK_C_JAVA")/javac
	[[ -x $javac ]] || javac=$(command -v javac || true)
	[[ -n $javac ]] || c_die "javac not found: install a Java 17 JDK (not only the JRE)"
	rm -rf "$KCK_C_PING_DIR.tmp"
	mkdir -p "$KCK_C_PING_DIR.tmp"
	"$javac" -nowarn -d "$KCK_C_PING_DIR.tmp" "$src" || c_die "javac CqlPing.java failed"
	rm -rf "$KCK_C_PING_DIR"
	mv "$KCK_C_PING_DIR.tmp" "$KCK_C_PING_DIR"
}

# c_cql NODE [CqlPing args...] CQL: runs one CQL statement against node NODE.
c_cql() {
	local n=$1
	shift
	"$KCK_C_JAVA" -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx64m -XX:-UsePerfData \
		-cp "$KCK_C_PING_DIR" CqlPing -h "$(c_node_addr "$n")" -p 9042 -t "${KCK_C_CQL_TIMEOUT:-5}" "$@"
}

# ---- processes -------------------------------------------------------------

# Every node JVM carries -Dkck.cassandra.node=<node dir> on its command line (not in
# the @argfile, which /proc/PID/cmdline does not expand); pids are checked against it
# so a stale pid file can never make us signal an unrelated process.
c_is_node_pid() { # PID NODE
	local pid=$1 want
	want="-Dkck.cassandra.node=$(c_node_dir "$2")"
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$want"
}

# Prints the pid of node NODE if it runs (pid file first, then a /proc scan for
# the marker in case the pid file was lost), else nothing and status 1.
c_node_pid() {
	local n=$1 pid f
	f=$(c_pid_file "$n")
	if [[ -f $f ]]; then
		pid=$(cat "$f" 2>/dev/null || true)
		if c_is_node_pid "$pid" "$n"; then
			echo "$pid"
			return 0
		fi
	fi
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if c_is_node_pid "$pid" "$n"; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

c_rss_mib() { # PID
	awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# Nodes (numbers) that have a directory under the run dir.
c_known_nodes() {
	local d
	for d in "$KCK_C_RUN_DIR"/node[1-9]; do
		[[ -d $d ]] && echo "${d##*node}"
	done
	return 0
}

# c_stop_nodes [--kill] NODE...: SIGTERM (or SIGKILL with --kill) to each running node,
# wait up to 30 s, then SIGKILL what is left; removes the pid files.
c_stop_nodes() {
	local sig=TERM n pid
	if [[ ${1:-} == --kill ]]; then
		sig=KILL
		shift
	fi
	local -A pids=()
	for n in "$@"; do
		if pid=$(c_node_pid "$n"); then
			c_log "node$n ($(c_node_addr "$n")): SIG$sig to pid $pid"
			kill -s "$sig" "$pid" 2>/dev/null || true
			pids[$n]=$pid
		fi
		rm -f "$(c_pid_file "$n")"
	done
	local t0=$SECONDS
	while ((${#pids[@]} > 0)); do
		for n in "${!pids[@]}"; do
			c_is_node_pid "${pids[$n]}" "$n" || {
				c_log "node$n stopped after $((SECONDS - t0)) s"
				unset "pids[$n]"
			}
		done
		((${#pids[@]} == 0)) && break
		if ((SECONDS - t0 >= 30)); then
			for n in "${!pids[@]}"; do
				c_log "node$n still running after 30 s: SIGKILL pid ${pids[$n]}"
				kill -s KILL "${pids[$n]}" 2>/dev/null || true
			done
			t0=$((SECONDS - 25)) # 5 more seconds for the kernel to reap
		fi
		sleep 0.3
	done
}

# ---- configuration ---------------------------------------------------------

# Balanced single token i (1-based) of n for Murmur3: -2^63 + (i-1) * floor(2^64 / n),
# computed without overflowing bash's signed 64-bit arithmetic.
c_token() { # I N
	local i=$1 n=$2 max=9223372036854775807 step t k
	step=$((2 * (max / n) + (2 * (max % n) + 2) / n))
	t=$((-max - 1))
	for ((k = 1; k < i; k++)); do t=$((t + step)); done
	echo "$t"
}

c_default_heap() { # N
	if [[ -n ${KCK_CASSANDRA_HEAP:-} ]]; then
		echo "$KCK_CASSANDRA_HEAP"
	elif (($1 == 1)); then
		echo 1G
	else
		echo 768M
	fi
}

# Java 17 module flags from Cassandra 5.0's conf/jvm17-server.options (also enough
# for nodetool). One per line, for a java @argfile.
c_module_flags() {
	cat <<'EOF'
--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED
--add-exports=java.sql/java.sql=ALL-UNNAMED
--add-exports=java.base/java.lang.ref=ALL-UNNAMED
--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED
--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED
--add-opens=java.base/java.lang.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED
--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED
--add-opens=java.base/jdk.internal.math=ALL-UNNAMED
--add-opens=java.base/jdk.internal.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED
--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
--add-opens=java.base/java.io=ALL-UNNAMED
--add-opens=java.base/java.lang.reflect=ALL-UNNAMED
--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
--add-opens=java.base/java.lang=ALL-UNNAMED
--add-opens=java.base/java.util=ALL-UNNAMED
EOF
}

# c_write_node_config NODE CLUSTER_SIZE: node dir with cassandra.yaml, logback.xml, jvm.args.
c_write_node_config() {
	local n=$1 size=$2 d addr heap
	d=$(c_node_dir "$n")
	addr=$(c_node_addr "$n")
	heap=$(c_default_heap "$size")
	mkdir -p "$d"/{conf,data,commitlog,saved_caches,hints,cdc_raw,logs,tmp,triggers}

	cat >"$d/conf/cassandra.yaml" <<EOF
# Generated by scripts/cassandra/up.sh for a throwaway local test node. Do not edit:
# the next up.sh overwrites it.
cluster_name: $(c_cluster_name)
num_tokens: 1
initial_token: $(c_token "$n" "$size")
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$(c_node_addr 1):7000"
listen_address: $addr
rpc_address: $addr
storage_port: 7000
native_transport_port: 9042
start_native_transport: true

data_file_directories:
  - $d/data
commitlog_directory: $d/commitlog
saved_caches_directory: $d/saved_caches
hints_directory: $d/hints
cdc_raw_directory: $d/cdc_raw

commitlog_sync: periodic
commitlog_sync_period: 10000ms
# Max mutation size is half a segment: 8 MiB here (default segment 32 MiB).
commitlog_segment_size: 16MiB
auto_snapshot: false
concurrent_compactors: 1
storage_compatibility_mode: NONE
# Paxos v2 (4.1 and later): a lightweight transaction takes two round trips to
# a quorum, not four, and contends less. Every lease and queue step is one.
paxos_variant: v2
# Lowest allowed value: a killed (SIGKILL) node is convicted after ~10 s instead of ~18 s.
phi_convict_threshold: 5
# Small caches: keeps the resident memory of a test node down.
file_cache_size: 64MiB
key_cache_size: 16MiB
counter_cache_size: 0MiB
networking_cache_size: 32MiB
EOF

	cat >"$d/conf/logback.xml" <<EOF
<!-- Generated by scripts/cassandra/up.sh: INFO to logs/system.log, nothing on the console. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$d/logs/system.log</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
EOF

	{
		cat <<EOF
-Xms$heap
-Xmx$heap
-Xss256k
-XX:+UseG1GC
-XX:+ParallelRefProcEnabled
-XX:MaxTenuringThreshold=1
-XX:+UseStringDeduplication
-XX:+PerfDisableSharedMem
-XX:ErrorFile=$d/logs/hs_err_%p.log
-XX:+ExitOnOutOfMemoryError
-ea
-da:net.openhft...
-Djava.net.preferIPv4Stack=true
-Djava.io.tmpdir=$d/tmp
-Djna.tmpdir=$d/tmp
-Djdk.attach.allowAttachSelf=true
-Dio.netty.tryReflectionSetAccessible=true
-Dio.netty.allocator.useCacheForAllThreads=true
-Dio.netty.allocator.maxOrder=11
-Dcassandra.config=file://$d/conf/cassandra.yaml
-Dlogback.configurationFile=$d/conf/logback.xml
-Dcassandra.logdir=$d/logs
-Dcassandra.triggers_dir=$d/triggers
-Dcassandra.storagedir=$d/data
-Dcassandra-foreground=yes
-Dcassandra.skip_wait_for_gossip_to_settle=0
-Dcassandra.shutdown_announce_in_ms=1000
-Dcassandra.allow_unsafe_join=true
-Dcassandra.test.flush_local_schema_changes=false
-Dcassandra.unsafesystem=true
-javaagent:$KCK_C_LIB_DIR/jamm-0.4.0.jar
EOF
		if [[ $KCK_C_JMX == 1 ]]; then
			echo "-Dcassandra.jmx.local.port=$(c_jmx_port "$n")"
			echo "-Dcom.sun.management.jmxremote.rmi.port=$(c_jmx_port "$n")"
		fi
		c_module_flags
		echo "-cp"
		echo "$d/conf:$KCK_C_LIB_DIR/*"
		echo "org.apache.cassandra.service.CassandraDaemon"
	} >"$d/jvm.args"
}

# ---- start / readiness -----------------------------------------------------

# True when something accepts TCP connections on ADDR:PORT.
c_port_open() { # ADDR PORT
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

c_tail_log() { # NODE
	local d
	d=$(c_node_dir "$1")
	c_log "---- last lines of $d/logs/system.log ----"
	tail -n 40 "$d/logs/system.log" >&2 2>/dev/null || true
	if [[ -s $d/stdout.log ]]; then
		c_log "---- last lines of $d/stdout.log ----"
		tail -n 20 "$d/stdout.log" >&2 || true
	fi
	grep -hE '^(ERROR|WARN) ' "$d/logs/system.log" 2>/dev/null | grep -vE 'sigar|JMX is not enabled|jemalloc|Only [0-9.]+ ?[A-Za-z]+ free across all data volumes' | tail -n 5 | sed 's/^/  /' >&2 || true
}

# c_launch NODE: start the JVM of an already configured node in the background.
c_launch() {
	local n=$1 d addr pid
	d=$(c_node_dir "$n")
	addr=$(c_node_addr "$n")
	[[ -f $d/jvm.args ]] || c_die "node$n has no configuration in $d: run up.sh first"
	if pid=$(c_node_pid "$n"); then
		c_log "node$n already runs (pid $pid)"
		return 0
	fi
	local p
	for p in 9042 7000; do
		c_port_open "$addr" "$p" && c_die "$addr:$p is already in use by another process (a Cassandra from another KCK_CASSANDRA_RUN_DIR? ss -ltnp | grep :$p)"
	done
	if [[ $KCK_C_JMX == 1 ]] && c_port_open 127.0.0.1 "$(c_jmx_port "$n")"; then
		c_die "JMX port 127.0.0.1:$(c_jmx_port "$n") is in use (set KCK_CASSANDRA_JMX=0 to run without JMX)"
	fi
	mkdir -p "$d/tmp" "$d/logs"
	{ echo "==== start $(date -Is)"; } >>"$d/stdout.log"
	# setsid: the node survives the caller's terminal/process group (Ctrl-C, go test).
	(exec 9>&- && cd "$d" && exec setsid nohup "$KCK_C_JAVA" "-Dkck.cassandra.node=$d" "@$d/jvm.args" >>"$d/stdout.log" 2>&1 </dev/null) &
	pid=$!
	# setsid execs in place unless it is a process-group leader (job control on);
	# then it forks, so find the JVM by its marker instead.
	local i
	for ((i = 0; i < 20; i++)); do
		c_is_node_pid "$pid" "$n" && break
		sleep 0.1
		pid=$(c_node_pid "$n") && break
		pid=$!
	done
	echo "$pid" >"$(c_pid_file "$n")"
	c_log "node$n ($addr): started pid $pid, logs in $d/logs/system.log"
}

# c_wait_ready NODE: waits until the node answers a real CQL query; fails (with the
# log tail) if its process dies or KCK_CASSANDRA_TIMEOUT passes.
c_wait_ready() {
	local n=$1 t0=$SECONDS pid addr last=$SECONDS out
	addr=$(c_node_addr "$n")
	pid=$(cat "$(c_pid_file "$n")" 2>/dev/null || true)
	while :; do
		if ! c_is_node_pid "$pid" "$n"; then
			c_log "node$n ($addr) died during startup after $((SECONDS - t0)) s"
			c_tail_log "$n"
			rm -f "$(c_pid_file "$n")"
			exit 1
		fi
		if c_port_open "$addr" 9042 && out=$(KCK_C_CQL_TIMEOUT=5 c_cql "$n" "SELECT release_version FROM system.local" 2>/dev/null) && [[ -n $out ]]; then
			c_log "node$n ($addr) ready in $((SECONDS - t0)) s: Cassandra $out answers CQL on $addr:9042 (pid $pid, RSS $(c_rss_mib "$pid") MiB)"
			return 0
		fi
		if ((SECONDS - t0 >= KCK_C_TIMEOUT)); then
			c_log "node$n ($addr) not ready after $KCK_C_TIMEOUT s (KCK_CASSANDRA_TIMEOUT)"
			c_tail_log "$n"
			exit 1
		fi
		if ((SECONDS - last >= 5)); then
			c_log "node$n ($addr): waiting for CQL... $((SECONDS - t0)) s"
			last=$SECONDS
		fi
		sleep 0.5
	done
}

# c_wait_cluster: every running node sees all the other running nodes as peers and
# as alive. Liveness is proven by a CL=<running count> range read of
# system_distributed (RF 3, so every node replicates every range when N <= 3): the
# coordinator answers Unavailable while it considers any running node down.
c_wait_cluster() {
	local size running=() n m t0=$SECONDS timeout=${1:-90} ok last=$SECONDS cl peers
	size=$(c_cluster_size)
	((size > 1)) || return 0
	for ((n = 1; n <= size; n++)); do
		c_node_pid "$n" >/dev/null && running+=("$n")
	done
	local r=${#running[@]}
	((r > 0)) || return 0
	case $r in 1) cl=ONE ;; 2) cl=TWO ;; *) cl=THREE ;; esac
	while :; do
		ok=1
		for n in "${running[@]}"; do
			peers=$(KCK_C_CQL_TIMEOUT=5 c_cql "$n" -q "SELECT peer FROM system.peers_v2" 2>/dev/null || echo -1)
			if [[ $peers != $((size - 1)) ]]; then
				ok=0
				break
			fi
			if ((size <= 3)) && ! KCK_C_CQL_TIMEOUT=5 c_cql "$n" -q -c "$cl" "SELECT * FROM system_distributed.view_build_status LIMIT 1" >/dev/null 2>&1; then
				ok=0
				break
			fi
		done
		if ((ok)); then
			c_log "cluster: ${running[*]/#/node} up; each sees $((size - 1)) peers and $r live replicas (CL $cl) after $((SECONDS - t0)) s"
			return 0
		fi
		for m in "${running[@]}"; do
			c_node_pid "$m" >/dev/null || {
				c_log "node$m died while waiting for the cluster"
				c_tail_log "$m"
				exit 1
			}
		done
		if ((SECONDS - t0 >= timeout)); then
			c_log "cluster did not converge in $timeout s (node$n: peers_v2 rows=$peers, want $((size - 1)))"
			c_tail_log "$n"
			exit 1
		fi
		if ((SECONDS - last >= 5)); then
			c_log "cluster: waiting for node$n to see all running nodes (peers_v2 rows=$peers)... $((SECONDS - t0)) s"
			last=$SECONDS
		fi
		sleep 1
	done
}

c_contact_points() {
	local size n out=()
	size=$(c_cluster_size)
	for ((n = 1; n <= size; n++)); do out+=("$(c_node_addr "$n"):9042"); done
	local IFS=,
	echo "${out[*]}"
}
