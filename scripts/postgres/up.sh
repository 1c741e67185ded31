#!/usr/bin/env bash
# Makes sure a local PostgreSQL runs with a `kck` role and the databases `kck`
# and `kck_test`: installs PostgreSQL from Debian packages when absent (needs
# root or sudo), starts the Debian cluster, creates what is missing. Idempotent
# and fast on a second run. Prints the DSN of database kck on stdout:
#   export KCK_POSTGRES_URL=$(scripts/postgres/up.sh)
set -euo pipefail
log() { printf '[postgres %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root or sudo for: $*"; fi; }
as_postgres() { if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/sh -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

PORT=${KCK_POSTGRES_PORT:-5432}
t0=$SECONDS
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
	log "installing PostgreSQL from Debian packages"
	as_root apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql postgresql-contrib >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"' | grep -q .; then
	log "creating cluster $ver/main"
	as_root pg_createcluster "$ver" main --port "$PORT" >&2
fi
# Test-friendly settings: pg_stat_statements (to count queries), and a
# connection limit that fits parallel test packages.
conf=/etc/postgresql/$ver/main/conf.d/kck.conf
if [[ ! -f $conf ]]; then
	as_root sh -c "printf '%s\n' \"shared_preload_libraries = 'pg_stat_statements'\" 'max_connections = 300' 'fsync = off' 'synchronous_commit = off' 'full_page_writes = off' > $conf"
	as_root pg_ctlcluster "$ver" main stop >&2 2>/dev/null || true
fi
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
	log "starting cluster $ver/main on port $PORT"
	as_root pg_ctlcluster "$ver" main start >&2
fi
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
pg_isready -q -h 127.0.0.1 -p "$PORT" || die "PostgreSQL does not answer on 127.0.0.1:$PORT (log: /var/log/postgresql/postgresql-$ver-main.log)"

as_postgres "psql -qtA -p $PORT -c \"SELECT 1 FROM pg_roles WHERE rolname = 'kck'\" | grep -q 1 || psql -q -p $PORT -c \"CREATE ROLE kck LOGIN SUPERUSER PASSWORD 'kck'\"" >&2
for db in kck kck_test; do
	as_postgres "psql -qtA -p $PORT -c \"SELECT 1 FROM pg_database WHERE datname = '$db'\" | grep -q 1 || createdb -p $PORT -O kck $db" >&2
done
log "PostgreSQL $ver ready on 127.0.0.1:$PORT in $((SECONDS - t0)) s (role kck, databases kck and kck_test)"
echo "postgres://kck:kck@127.0.0.1:$PORT/kck?sslmode=disable"
