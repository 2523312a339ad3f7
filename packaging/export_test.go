package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// What the external tests (package packaging_test) share with these.

// lbdBuild is lbdBinary's build, once for the package.
var lbdBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// lbdBinary returns an lbd built from this tree: $LBD_TEST_LBD when set
// (scripts/test.sh builds one for every test process), else one built
// on first use.
func lbdBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LBD_TEST_LBD"); p != "" {
		return p
	}
	lbdBuild.once.Do(func() {
		if lbdBuild.dir, lbdBuild.err = os.MkdirTemp("", "lbd-bin-"); lbdBuild.err != nil {
			return
		}
		lbdBuild.path = filepath.Join(lbdBuild.dir, "lbd")
		if out, err := exec.Command("go", "build", "-o", lbdBuild.path, "../cmd/lbd").CombinedOutput(); err != nil {
			lbdBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if lbdBuild.err != nil {
		t.Fatal(lbdBuild.err)
	}
	return lbdBuild.path
}

// LbdBinary is lbdBinary for the external tests.
func LbdBinary(t *testing.T) string {
	t.Helper()
	return lbdBinary(t)
}

// RemoveTestBuilds removes what lbdBinary built; TestMain calls it.
func RemoveTestBuilds() {
	if lbdBuild.dir != "" {
		os.RemoveAll(lbdBuild.dir)
	}
}
