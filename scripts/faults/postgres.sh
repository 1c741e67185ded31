#!/usr/bin/env bash
# The fault suite's own PostgreSQL: a Debian cluster named KCK_FAULTS_PG_NAME
# (default `faults`) on port KCK_FAULTS_PG_PORT (default 5440), apart from the
# project's `main` cluster, because the suite stops and starts it. Creates it when absent, with the role
# and database scripts/postgres/up.sh creates (role kck, database kck).
#   scripts/faults/postgres.sh start   prints the DSN on stdout
#   scripts/faults/postgres.sh stop    stops that cluster only
set -euo pipefail
log() { printf '[faults-postgres %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root or sudo for: $*"; fi; }
as_postgres() { if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/sh -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

PORT=${KCK_FAULTS_PG_PORT:-5440}
NAME=${KCK_FAULTS_PG_NAME:-faults}
# Installs PostgreSQL when absent (the project's script does it the same way).
command -v pg_ctlcluster >/dev/null || "$(dirname "${BASH_SOURCE[0]}")/../postgres/up.sh" >/dev/null
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
online() { pg_lsclusters -h | awk -v v="$ver" -v n="$NAME" '$1 == v && $2 == n && $4 == "online"' | grep -q .; }

case ${1:-} in
start)
	if ! pg_lsclusters -h | awk -v v="$ver" -v n="$NAME" '$1 == v && $2 == n' | grep -q .; then
		log "creating cluster $ver/$NAME on port $PORT"
		as_root pg_createcluster "$ver" "$NAME" --port "$PORT" >&2
		as_root sh -c "printf '%s\n' 'max_connections = 200' 'fsync = off' 'synchronous_commit = off' 'full_page_writes = off' > /etc/postgresql/$ver/$NAME/conf.d/kck.conf"
	fi
	online || as_root pg_ctlcluster "$ver" "$NAME" start >&2
	for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
	pg_isready -q -h 127.0.0.1 -p "$PORT" || die "PostgreSQL $NAME does not answer on 127.0.0.1:$PORT"
	as_postgres "psql -qtA -p $PORT -c \"SELECT 1 FROM pg_roles WHERE rolname = 'kck'\" | grep -q 1 || psql -q -p $PORT -c \"CREATE ROLE kck LOGIN SUPERUSER PASSWORD 'kck'\"" >&2
	as_postgres "psql -qtA -p $PORT -c \"SELECT 1 FROM pg_database WHERE datname = 'kck'\" | grep -q 1 || createdb -p $PORT -O kck kck" >&2
	echo "postgres://kck:kck@127.0.0.1:$PORT/kck?sslmode=disable"
	;;
stop)
	# Fast shutdown: what a crash looks like to clients (connections cut).
	if online; then as_root pg_ctlcluster "$ver" "$NAME" stop -m fast >&2; fi
	;;
*) die "usage: $0 start|stop" ;;
esac
