// Package testbin gives tests a program built from this tree once per
// test process, or the one a caller built for every process (its path
// in an environment variable: scripts/test.sh builds lbd once per run).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// A Build is one program, built on first use.
type Build struct {
	Env   string   // names a prebuilt binary when set
	Pkg   string   // what go build builds, relative to the test's directory
	Name  string   // the built file's name
	Flags []string // more go build flags, e.g. -race

	once      sync.Once
	dir, path string
	err       error
}

// Get returns the binary's path, building it the first time unless Env
// names one.
func (b *Build) Get() (string, error) {
	b.once.Do(func() {
		if p := os.Getenv(b.Env); p != "" {
			b.path = p
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "lbd-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, b.Name)
		args := append([]string{"build", "-o", b.path}, b.Flags...)
		if out, err := exec.Command("go", append(args, b.Pkg)...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.Pkg, err, out)
		}
	})
	return b.path, b.err
}

// Path is Get that fails the test on an error.
func (b *Build) Path(t testing.TB) string {
	t.Helper()
	p, err := b.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Remove deletes what Get built (nothing when Env named the binary);
// TestMain calls it after the tests.
func (b *Build) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
