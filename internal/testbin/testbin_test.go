package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuild: built once on first use, runs, and Remove deletes it; an
// environment variable naming a binary is used as it is, and Remove
// leaves it.
func TestBuild(t *testing.T) {
	b := &Build{Env: "LBD_TESTBIN_TEST_UNSET", Pkg: "./testdata/hello", Name: "hello"}
	p := b.Path(t)
	if filepath.Base(p) != "hello" {
		t.Errorf("built %s, want a file named hello", p)
	}
	out, err := exec.Command(p).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("%s: %q, %v", p, out, err)
	}
	if again := b.Path(t); again != p {
		t.Errorf("second Path %s, want the first build %s", again, p)
	}
	b.Remove()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("after Remove, %s: %v", p, err)
	}

	t.Setenv("LBD_TESTBIN_TEST_SET", p+"-prebuilt")
	pre := &Build{Env: "LBD_TESTBIN_TEST_SET", Pkg: "./testdata/hello", Name: "hello"}
	if got := pre.Path(t); got != p+"-prebuilt" {
		t.Errorf("with the variable set: %s, want %s", got, p+"-prebuilt")
	}
	pre.Remove() // nothing to remove

	bad := &Build{Pkg: "./testdata/missing", Name: "x"}
	if _, err := bad.Get(); err == nil || !strings.Contains(err.Error(), "go build ./testdata/missing") {
		t.Errorf("building a missing package: %v, want an error naming it", err)
	}
	bad.Remove()
}
