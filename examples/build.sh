#!/usr/bin/env bash
# Builds one example app for the browser tests: npm ci from its lockfile,
# then its production build. Skips both when the build output is newer than
# every source file, so repeated test runs stay fast; a clean clone (CI)
# builds. Prints the directory of the built files on stdout, the timings on
# stderr.
#   examples/build.sh react-apollo
set -euo pipefail
log() { printf '[examples %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
name=${1:?usage: build.sh EXAMPLE}
dir=$(cd "$(dirname "$0")/$name" && pwd)
case $name in
angular-*) out=$dir/dist/browser ;;
*) out=$dir/dist ;;
esac
# Two test binaries may build at once: one builds, the other waits.
exec 9>"${TMPDIR:-/tmp}/kck-examples-$name.lock"
flock 9
cd "$dir"
stamp=$dir/dist/.built
if [[ -f $stamp ]] && [[ -z $(find . -path ./node_modules -prune -o -path ./dist -prune -o -path ./.angular -prune -o -type f -newer "$stamp" -print -quit) ]]; then
	log "$name: up to date"
	echo "$out"
	exit 0
fi
start=$(date +%s)
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
	log "$name: npm ci"
	npm ci --no-audit --no-fund --loglevel=error >&2
fi
ci=$(date +%s)
log "$name: npm run build"
npm run build --silent >&2
touch "$stamp"
log "$name: built in $(($(date +%s) - start)) s (npm ci $((ci - start)) s, build $(($(date +%s) - ci)) s)"
echo "$out"
