#!/usr/bin/env bash
# Writes examples/angular-apollo's typed documents: the schema the gateway
# serves (kck schema, into schema.graphql), then GraphQL Code Generator's
# client preset over it (src/gql/). npm ci first when node_modules is absent
# or older than the lockfile. Both outputs are committed; make check-codegen
# fails when this changes them.
#   examples/codegen.sh
set -euo pipefail
log() { printf '[codegen %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/examples/angular-apollo
# build.sh may be building this example: one at a time.
exec 9>"${TMPDIR:-/tmp}/kck-examples-angular-apollo.lock"
flock 9
start=$(date +%s%N)
(cd "$root" && go run . schema) >"$dir/schema.graphql.new"
mv "$dir/schema.graphql.new" "$dir/schema.graphql"
cd "$dir"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
	log "angular-apollo: npm ci"
	npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent codegen >/dev/null
log "angular-apollo: schema and typed documents written in $((($(date +%s%N) - start) / 1000000)) ms"
