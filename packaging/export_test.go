package packaging

import (
	"testing"

	"github.com/lbdproject/lbd/internal/testbin"
)

// What the external tests (package packaging_test) share with these.

// lbdBuild is lbd, built once for the package unless $LBD_TEST_LBD names
// one (scripts/test.sh builds one for every test process).
var lbdBuild = &testbin.Build{Env: "LBD_TEST_LBD", Pkg: "../cmd/lbd", Name: "lbd"}

// lbdBinary returns an lbd built from this tree.
func lbdBinary(t *testing.T) string {
	t.Helper()
	return lbdBuild.Path(t)
}

// LbdBinary is lbdBinary for the external tests.
func LbdBinary(t *testing.T) string {
	t.Helper()
	return lbdBinary(t)
}

// RemoveTestBuilds removes what lbdBinary built; TestMain calls it.
func RemoveTestBuilds() { lbdBuild.Remove() }
