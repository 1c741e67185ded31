#!/usr/bin/env bash
# Runs Cassandra's nodetool against node N over its local JMX port (7190+KCK_CASSANDRA_NODE_BASE+N).
#   scripts/cassandra/nodetool.sh N status
# Needs the nodes started with JMX (the default; KCK_CASSANDRA_JMX=0 turns it off).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 2 ]] || c_die "usage: $0 NODE COMMAND [ARGS...]   e.g. $0 1 status"
n=$1
shift
c_check_node_arg "$n"
c_find_java
c_lib_ok || c_die "no jars in $KCK_C_LIB_DIR: run fetch.sh or up.sh first"
logback=$KCK_C_TOOLS_DIR/logback-tools.xml
if [[ ! -f $logback ]]; then
	mkdir -p "$KCK_C_TOOLS_DIR"
	cat >"$logback" <<'XML'
<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
XML
fi
mapfile -t modflags < <(c_module_flags)
# user.home: nodetool keeps its history file in ~/.cassandra; keep it in the cache.
exec "$KCK_C_JAVA" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${modflags[@]}" \
	-Duser.home="$KCK_C_TOOLS_DIR" \
	-Dlogback.configurationFile="$logback" \
	-cp "$KCK_C_LIB_DIR/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$(c_jmx_port "$n")" "$@"
