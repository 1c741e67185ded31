#!/usr/bin/env bash
# Makes sure browser tests can run: Debian's chromium (installed from Debian
# packages when absent; needs root or sudo) and playwright-core from npm in
# browser/ (npm ci from the lockfile; no browser is downloaded). Idempotent and
# fast on a second run. Prints the chromium path on stdout.
set -euo pipefail
log() { printf '[browser %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root or sudo for: $*"; fi; }

root=$(cd "$(dirname "$0")/../.." && pwd)
chromium=${KCK_CHROMIUM:-/usr/bin/chromium}
# Two test binaries may ask at once: one installs, the other waits.
exec 9>"${TMPDIR:-/tmp}/kck-browser-ensure.lock"
flock 9
if [[ ! -x $chromium ]]; then
	log "installing chromium from Debian packages"
	as_root apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >&2
fi
[[ -x $chromium ]] || die "no chromium at $chromium"
cd "$root/browser"
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but say so.
if [[ ! -d node_modules/playwright-core ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
	log "npm ci in browser/"
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2
fi
echo "$chromium"
