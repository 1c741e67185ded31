// Command openapi2jsonschema writes the JSON schemas kubeconform validates
// manifests against, from the Kubernetes API's OpenAPI document
// (api/openapi-spec/swagger.json of the k8s.io/kubernetes module): one file
// per kind and version, named as kubeconform looks them up
// ({{ .ResourceKind }}{{ .KindSuffix }}.json: deployment-apps-v1.json,
// service-v1.json), standalone (every $ref inlined) and strict (an object
// takes only the properties it declares). It does what the
// openapi2jsonschema.py script behind the published schema collections
// does, which cannot be fetched here.
//
//	go run ./deploy/kubernetes/openapi2jsonschema -o DIR swagger.json
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	out := flag.String("o", "", "directory to write the schemas into")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: openapi2jsonschema -o DIR swagger.json")
		os.Exit(2)
	}
	n, err := run(flag.Arg(0), *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi2jsonschema:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "openapi2jsonschema: %d schemas in %s\n", n, *out)
}

func run(swagger, out string) (int, error) {
	b, err := os.ReadFile(swagger)
	if err != nil {
		return 0, err
	}
	schemas, err := convert(b)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	for name, s := range schemas {
		if err := os.WriteFile(filepath.Join(out, name), s, 0o644); err != nil {
			return 0, err
		}
	}
	return len(schemas), nil
}

type gvk struct{ Group, Version, Kind string }

// convert returns the schema file of every kind the document defines, by
// file name.
func convert(doc []byte) (map[string][]byte, error) {
	var d struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("the OpenAPI document: %w", err)
	}
	if len(d.Definitions) == 0 {
		return nil, errors.New("the OpenAPI document has no definitions")
	}
	out := map[string][]byte{}
	for name, def := range d.Definitions {
		for _, k := range kinds(def) {
			s, ok := expand(d.Definitions, def, []string{name}).(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s is not an object schema", name)
			}
			s["$schema"] = "http://json-schema.org/schema#"
			if props, ok := s["properties"].(map[string]any); ok {
				apiVersion := k.Version
				if k.Group != "" {
					apiVersion = k.Group + "/" + k.Version
				}
				setEnum(props, "kind", k.Kind)
				setEnum(props, "apiVersion", apiVersion)
			}
			b, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				return nil, err
			}
			out[fileName(k)] = b
		}
	}
	return out, nil
}

// kinds are the group, version and kind a definition is the object of.
func kinds(def map[string]any) []gvk {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, e := range list {
		m, _ := e.(map[string]any)
		k := gvk{str(m["group"]), str(m["version"]), str(m["kind"])}
		if k.Kind != "" && k.Version != "" {
			out = append(out, k)
		}
	}
	return out
}

// fileName is how kubeconform names a kind's schema: the kind, then the
// group's first label (none for the core group), then the version, lower
// case.
func fileName(k gvk) string {
	suffix := "-" + strings.ToLower(k.Version)
	if g := strings.Split(k.Group, ".")[0]; g != "" {
		suffix = "-" + strings.ToLower(g) + suffix
	}
	return strings.ToLower(k.Kind) + suffix + ".json"
}

func setEnum(props map[string]any, name, value string) {
	if p, ok := props[name].(map[string]any); ok {
		p["enum"] = []any{value}
	}
}

func str(v any) string { s, _ := v.(string); return s }

// expand returns v with every $ref inlined, every object strict and every
// optional property nullable (the API takes null for a field it does not
// require). path holds the definitions being inlined: a definition met
// again inside itself (CRDs' JSONSchemaProps) is left open ({}).
func expand(defs map[string]map[string]any, v any, path []string) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expand(defs, e, path)
		}
		return out
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			def, ok := defs[name]
			if !ok || slices.Contains(path, name) {
				return map[string]any{}
			}
			s := expand(defs, def, append(path, name)).(map[string]any)
			if d, ok := x["description"]; ok {
				s["description"] = d
			}
			return s
		}
		if special := specialType(path); special != nil {
			return special
		}
		out := make(map[string]any, len(x)+1)
		for k, e := range x {
			if k == "x-kubernetes-group-version-kind" {
				continue
			}
			out[k] = expand(defs, e, path)
		}
		if props, ok := out["properties"].(map[string]any); ok {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
			required := map[string]bool{}
			for _, r := range asList(out["required"]) {
				required[str(r)] = true
			}
			for name, p := range props {
				if pm, ok := p.(map[string]any); ok && !required[name] {
					if t, ok := pm["type"].(string); ok {
						pm["type"] = []any{t, "null"}
					}
				}
			}
		}
		return out
	}
	return v
}

// specialType is the schema of the definitions whose OpenAPI type says
// less than the API takes: a quantity (cpu: 1, memory: 512Mi) and an
// int-or-string (port: 8080, port: http).
func specialType(path []string) map[string]any {
	if len(path) == 0 {
		return nil
	}
	switch path[len(path)-1] {
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }
