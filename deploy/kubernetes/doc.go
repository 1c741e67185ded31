// Package kubernetes holds the gateway's Kubernetes manifests (the YAML files
// here: kubectl apply -f deploy/kubernetes/) and the tests that keep them
// consistent with the gateway: the SQL products' ConfigMap equal to the
// demo's files, probes and the drain fitting terminationGracePeriodSeconds,
// memory fitting the sizing rule of docs/deploy.md, every KCK_* variable a
// real one. `make check-manifests` validates them against the Kubernetes API's
// schemas with kubeconform (see openapi2jsonschema).
package kubernetes
