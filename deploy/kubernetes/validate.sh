#!/usr/bin/env bash
# Validates the manifests in deploy/kubernetes against the Kubernetes API's
# schemas with kubeconform, strictly (no field the API lacks, no duplicate
# key), offline:
#   - kubeconform is built from its Go module (pinned) into .cache/bin;
#   - the schemas are made from the OpenAPI document the k8s.io/kubernetes Go
#     module ships (api/openapi-spec/swagger.json; pinned version, checked by
#     the module proxy's checksum database like any module) by
#     openapi2jsonschema, into .cache/kubernetes-schemas/VERSION.
# Then it checks that testdata/invalid.yaml is refused, each of its objects.
#   deploy/kubernetes/validate.sh
set -euo pipefail
log() { printf '[manifests %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
KUBECONFORM_VERSION=v0.8.0
KUBERNETES_VERSION=v1.37.2 # the Kubernetes release the manifests are checked against

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$root/deploy/kubernetes
cache=$root/.cache
start=$(date +%s)

bin=$cache/bin/kubeconform-$KUBECONFORM_VERSION
if [[ ! -x $bin ]]; then
	log "building kubeconform $KUBECONFORM_VERSION"
	tmp=$(mktemp -d)
	GOBIN=$tmp go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
	mkdir -p "$cache/bin"
	mv "$tmp/kubeconform" "$bin"
	rm -rf "$tmp"
fi

schemas=$cache/kubernetes-schemas/$KUBERNETES_VERSION
if [[ ! -f $schemas/.done ]]; then
	log "making the Kubernetes $KUBERNETES_VERSION schemas"
	# Outside any module: the download does not touch go.mod.
	mod=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")
	moddir=$(printf '%s' "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -f $moddir/api/openapi-spec/swagger.json ]] || { log "no swagger.json in k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
	rm -rf "$schemas"
	(cd "$root" && go run ./deploy/kubernetes/openapi2jsonschema -o "$schemas" "$moddir/api/openapi-spec/swagger.json")
	touch "$schemas/.done"
fi

location="$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json"
"$bin" -strict -summary -schema-location "$location" "$dir"/*.yaml

# The schemas must refuse what the API refuses: every object of invalid.yaml.
objects=$(grep -c '^kind:' "$dir/testdata/invalid.yaml")
out=$("$bin" -strict -summary -output json -schema-location "$location" "$dir/testdata/invalid.yaml" || true)
# Refused: invalid, or (an API version this release lacks) no schema.
invalid=$(printf '%s' "$out" | sed -n 's/.*"invalid": \([0-9]*\).*/\1/p')
errors=$(printf '%s' "$out" | sed -n 's/.*"errors": \([0-9]*\).*/\1/p')
if [[ $((invalid + errors)) != "$objects" ]]; then
	log "testdata/invalid.yaml: $objects objects, $((invalid + errors)) refused:"
	printf '%s\n' "$out" >&2
	exit 1
fi
log "valid against Kubernetes $KUBERNETES_VERSION; the $objects invalid objects refused ($(($(date +%s) - start)) s)"
