package directives_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The server binary reads the directives' names from this package, not from
// the code generator's plugin: it must not link gqlgen's code generator.
func TestServerBinaryLinksNoCodeGenerator(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kck-go/kck").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages: %s", len(deps), out)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/99designs/gqlgen/codegen") || strings.HasPrefix(p, "github.com/99designs/gqlgen/api") ||
			strings.HasPrefix(p, "github.com/99designs/gqlgen/plugin") || p == "github.com/kck-go/kck/graph/productfield" {
			t.Errorf("the server binary links %s", p)
		}
	}
}
