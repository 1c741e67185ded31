package kubernetes_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func root() string { return filepath.Join(here(), "..", "..") }

// object is the part of a manifest these tests read.
type object struct {
	Kind     string
	Metadata struct{ Name string }
	Data     map[string]string
	Spec     struct {
		Selector       selector
		ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
		Template       struct {
			Metadata struct{ Labels map[string]string }
			Spec     podSpec
		}
	}
}

// selector is a Service's (labels) or a budget's (matchLabels).
type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
	Labels      map[string]string `yaml:",inline"`
}

func (s selector) labels() map[string]string {
	if s.MatchLabels != nil {
		return s.MatchLabels
	}
	return s.Labels
}

type podSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	Containers                    []struct {
		Ports []struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}
		Env []struct {
			Name      string
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		}
		Resources struct {
			Requests, Limits map[string]string
		}
		StartupProbe   probe `yaml:"startupProbe"`
		LivenessProbe  probe `yaml:"livenessProbe"`
		ReadinessProbe probe `yaml:"readinessProbe"`
		Lifecycle      struct {
			PreStop struct {
				Sleep struct{ Seconds int }
			} `yaml:"preStop"`
		}
	}
}

type probe struct {
	HTTPGet struct {
		Path string
		Port string
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// manifests reads every object of every YAML file here, by kind/name.
func manifests(t *testing.T) map[string]object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(here(), "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			require.NotEmpty(t, o.Kind, f)
			out[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return out
}

// The ConfigMap of SQL products holds the demo's files, unchanged: the
// schema built into the image serves exactly those.
func TestSQLConfigMapIsTheDemo(t *testing.T) {
	cm, ok := manifests(t)["ConfigMap/kck-sql"]
	require.True(t, ok)
	files, err := filepath.Glob(filepath.Join(root(), "demo", "sql", "*.sql"))
	require.NoError(t, err)
	want := map[string]string{}
	for _, f := range files {
		if filepath.Base(f) == "schema.sql" {
			continue // the demo's tables: not a product
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		want[filepath.Base(f)] = string(b)
	}
	assert.Equal(t, want, cm.Data)
}

// The drain fits the grace period, the probes fit the drain, and the
// Service, the budget and the autoscaler find the gateways.
func TestDeploymentFitsTheDrain(t *testing.T) {
	all := manifests(t)
	d, ok := all["Deployment/kck"]
	require.True(t, ok)
	cfg := all["ConfigMap/kck-config"].Data
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]

	drain, err := time.ParseDuration(cfg["KCK_DRAIN_DELAY"])
	require.NoError(t, err)
	shutdown, err := time.ParseDuration(cfg["KCK_SHUTDOWN_TIMEOUT"])
	require.NoError(t, err)
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	assert.GreaterOrEqual(t, grace, preStop+drain+shutdown+5*time.Second,
		"terminationGracePeriodSeconds: the preStop wait, the drain delay, the shutdown timeout and 5 s to close")
	r := c.ReadinessProbe
	assert.Equal(t, "/readyz", r.HTTPGet.Path)
	assert.LessOrEqual(t, time.Duration(r.PeriodSeconds*r.FailureThreshold)*time.Second, preStop+drain,
		"a draining gateway is seen unready before its listener closes")
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)
	for _, p := range []probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		assert.Equal(t, "http", p.HTTPGet.Port)
	}
	require.Len(t, c.Ports, 1)
	assert.Equal(t, "http", c.Ports[0].Name)
	assert.Equal(t, 8080, c.Ports[0].ContainerPort, "the image listens on :8080")

	labels := d.Spec.Template.Metadata.Labels
	selects := func(kind string, sel map[string]string) {
		t.Helper()
		require.NotEmpty(t, sel, kind)
		for k, v := range sel {
			assert.Equal(t, v, labels[k], "%s selects the gateways by %s", kind, k)
		}
	}
	selects("Service", all["Service/kck"].Spec.Selector.labels())
	selects("PodDisruptionBudget", all["PodDisruptionBudget/kck"].Spec.Selector.labels())
	hpa := all["HorizontalPodAutoscaler/kck"]
	assert.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	assert.Equal(t, "kck", hpa.Spec.ScaleTargetRef.Name)

	var secret bool
	for _, e := range c.Env {
		secret = secret || e.Name == "KCK_AUTH_JWT_SECRET" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}
	assert.True(t, secret, "the JWT key comes from a Secret")
}

// Memory: the container's limit holds every cache (KCK_MEMORY_MB, whose
// resident size reaches 1.7 times the budget: bench/README.md's cost
// curve), the WebSockets (72 KiB each: docs/deploy.md) and the runtime
// (32 MiB), with GOMEMLIMIT between the two.
func TestMemoryFitsTheSizingRule(t *testing.T) {
	all := manifests(t)
	cfg := all["ConfigMap/kck-config"].Data
	c := all["Deployment/kck"].Spec.Template.Spec.Containers[0]
	mib := func(s string) float64 {
		t.Helper()
		for suffix, f := range map[string]float64{"MiB": 1, "Mi": 1, "GiB": 1024, "Gi": 1024} {
			if v, ok := strings.CutSuffix(s, suffix); ok {
				n, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err, s)
				return n * f
			}
		}
		t.Fatalf("no size in %q", s)
		return 0
	}
	memoryMB, err := strconv.ParseFloat(cfg["KCK_MEMORY_MB"], 64)
	require.NoError(t, err)
	conns, err := strconv.ParseFloat(cfg["KCK_MAX_WEBSOCKET_CONNECTIONS"], 64)
	require.NoError(t, err)
	need := memoryMB*1.7 + conns*72/1024 + 32
	goLimit := mib(cfg["GOMEMLIMIT"])
	limit := mib(c.Resources.Limits["memory"])
	assert.GreaterOrEqual(t, goLimit, need, "GOMEMLIMIT holds the caches, the WebSockets and the runtime")
	assert.Less(t, goLimit, limit, "GOMEMLIMIT below the container's limit")
	assert.Equal(t, c.Resources.Requests["memory"], c.Resources.Limits["memory"], "memory requested is memory allowed")
}

// Every KCK_* variable the manifests set is one the gateway reads.
func TestVariablesAreRead(t *testing.T) {
	var src strings.Builder
	for _, dir := range []string{"cli", filepath.Join("cache", "cassandra")} {
		files, err := filepath.Glob(filepath.Join(root(), dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			src.Write(b)
		}
	}
	all := manifests(t)
	names := map[string]bool{}
	for name := range all["ConfigMap/kck-config"].Data {
		names[name] = true
	}
	for _, c := range all["Deployment/kck"].Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			names[e.Name] = true
		}
	}
	for name := range names {
		if strings.HasPrefix(name, "KCK_") {
			assert.Contains(t, src.String(), strconv.Quote(name), "%s is read by no flag", name)
		}
	}
}
