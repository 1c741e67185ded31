package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A small OpenAPI document: a kind with a nested reference, an int-or-string,
// a quantity, a self-reference, a core-group kind, and a definition that is
// no kind.
const doc = `{"definitions": {
  "io.k8s.api.apps.v1.Deployment": {
    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Deployment"}],
    "required": ["spec"],
    "properties": {
      "apiVersion": {"type": "string"}, "kind": {"type": "string"},
      "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec", "description": "the spec"}
    }
  },
  "io.k8s.api.apps.v1.DeploymentSpec": {
    "required": ["replicas"],
    "properties": {
      "replicas": {"type": "integer"},
      "maxSurge": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "self": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}}
    }
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.core.v1.Service": {
    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Service"}],
    "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}}
  },
  "io.k8s.api.core.v1.PodSpec": {"properties": {"x": {"type": "string"}}}
}}`

func TestConvert(t *testing.T) {
	out, err := convert([]byte(doc))
	require.NoError(t, err)
	require.Len(t, out, 2, "one file per kind")
	var d map[string]any
	require.NoError(t, json.Unmarshal(out["deployment-apps-v1.json"], &d))
	props := d["properties"].(map[string]any)
	assert.Equal(t, []any{"Deployment"}, props["kind"].(map[string]any)["enum"])
	assert.Equal(t, []any{"apps/v1"}, props["apiVersion"].(map[string]any)["enum"])
	assert.Equal(t, false, d["additionalProperties"], "strict")

	spec := props["spec"].(map[string]any)
	assert.Equal(t, "the spec", spec["description"], "the reference's description is kept")
	assert.Equal(t, false, spec["additionalProperties"])
	sp := spec["properties"].(map[string]any)
	assert.Equal(t, "integer", sp["replicas"].(map[string]any)["type"], "required: not nullable")
	assert.Len(t, sp["maxSurge"].(map[string]any)["oneOf"], 2, "int-or-string")
	assert.Len(t, sp["memory"].(map[string]any)["oneOf"], 2, "a quantity: string or number")
	assert.Equal(t, map[string]any{}, sp["self"], "a cycle is left open")
	labels := sp["labels"].(map[string]any)
	assert.Equal(t, []any{"object", "null"}, labels["type"], "optional: nullable")
	assert.Equal(t, map[string]any{"type": "string"}, labels["additionalProperties"], "a map keeps its values' schema")

	require.NoError(t, json.Unmarshal(out["service-v1.json"], &d))
	assert.Equal(t, []any{"v1"}, d["properties"].(map[string]any)["apiVersion"].(map[string]any)["enum"])
}

func TestConvertRefusesWhatIsNoOpenAPIDocument(t *testing.T) {
	for _, in := range []string{`nope`, `{}`, `{"definitions": {}}`} {
		_, err := convert([]byte(in))
		assert.Error(t, err, in)
	}
}
