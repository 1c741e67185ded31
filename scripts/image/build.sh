#!/usr/bin/env bash
# Builds the kck container image from the Containerfile with Debian's buildah,
# tagged $KCK_IMAGE (localhost/kck:dev). Prints the tag on stdout, timings on
# stderr. Installs buildah, and podman and runc for the image's test
# (deploy/image), from Debian's packages when absent (needs root or sudo).
#
# The build stage runs Go from an image made here of this machine's Go
# toolchain, its CA certificates and its zoneinfo (localhost/kck-go:VERSION,
# made once per Go version): the build needs no registry of images, and uses
# the Go that builds everything else. Its RUN steps use buildah's chroot
# isolation: the OCI runtimes cannot start containers on a machine whose
# cgroups are in hybrid mode (crun refuses it), and a build step needs no
# more. Go's module and build caches are cache mounts (see the
# Containerfile), kept between builds.
set -euo pipefail
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root or sudo for: $*"; fi; }

root=$(cd "$(dirname "$0")/../.." && pwd)
tag=${KCK_IMAGE:-localhost/kck:dev}
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
	log "installing buildah, podman and runc from Debian packages"
	as_root apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq buildah podman runc >&2
fi
start=$(date +%s)

goroot=$(go env GOROOT)
goimage=localhost/kck-go:$(go env GOVERSION)
if ! buildah inspect --type image "$goimage" >/dev/null 2>&1; then
	log "making $goimage from $goroot"
	empty=$(mktemp -d)
	chmod 1777 "$empty"
	ctr=$(buildah from scratch)
	trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$empty"' EXIT
	buildah copy -q "$ctr" "$goroot" /usr/local/go >/dev/null
	buildah copy -q "$ctr" "$empty" /tmp >/dev/null
	buildah copy -q "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
	buildah copy -q "$ctr" /usr/share/zoneinfo /usr/share/zoneinfo >/dev/null
	buildah config --env PATH=/usr/local/go/bin --env GOTOOLCHAIN=local --env HOME=/root "$ctr"
	buildah commit -q "$ctr" "$goimage" >/dev/null
fi
made=$(date +%s)

log "building $tag"
old=$(buildah images --quiet --no-trunc "$tag" 2>/dev/null || true)
# No --layers: the caches that make a rebuild fast are Go's (cache mounts),
# and no intermediate image piles up.
buildah bud --quiet --isolation chroot --build-arg GO_IMAGE="$goimage" \
	-f "$root/Containerfile" -t "$tag" "$root" >/dev/null
if [[ -n $old && $old != "$(buildah images --quiet --no-trunc "$tag")" ]]; then
	buildah rmi "$old" >/dev/null 2>&1 || true # the previous build, untagged now (unless a container uses it)
fi
log "built $tag in $(($(date +%s) - start)) s (the Go image $((made - start)) s)"
echo "$tag"
