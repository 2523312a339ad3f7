package internal

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoKubernetesImports keeps the Kubernetes API at the boundary
// (internal/watch, internal/election, internal/controlplane): the slim
// cluster values, the allocator, the announcers, the node agent and the
// configuration never import k8s.io, directly or through a dependency.
func TestNoKubernetesImports(t *testing.T) {
	for _, pkg := range []string{"./config", "./pool", "./announce", "./daemon", "./metallb", "./bgp", "./agent", "./election/owner", "./allocate", "./cluster", "./sink", "./status"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
