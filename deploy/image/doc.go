// Package image tests the kck container image (the Containerfile at the
// repository's root): what it holds (the static binary, CA certificates and
// time zone data, nothing else), its defaults (a non-root user, the embedded
// store in the /data volume), the gateway run from it with podman, stopped
// by SIGTERM as an orchestrator stops it, and the Kubernetes manifests'
// configuration (deploy/kubernetes) run with it.
//
// The tests are behind the build tag "image" and read the image's tag from
// KCK_IMAGE: `make image-test` builds the image and runs them (part of make
// test). Nothing here runs under a plain `go test ./...`.
package image
