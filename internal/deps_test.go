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
	for _, pkg := range []string{"./config", "./pool", "./announce", "./daemon", "./metallb", "./bgp", "./agent", "./election/owner", "./allocate", "./cluster", "./sink", "./status", "./peers"} {
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

// TestNoLabInDaemon keeps the test and demo labs out of the lbd binary:
// they run processes, make namespaces and carry a fake testing.TB.
func TestNoLabInDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/lbd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ../cmd/lbd: %v\n%s", err, out)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, lab := range []string{"kubetest", "netlab", "systemdtest", "demo"} {
			if dep == "github.com/lbdproject/lbd/internal/"+lab {
				t.Errorf("cmd/lbd depends on %s", dep)
			}
		}
	}
}
