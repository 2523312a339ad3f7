package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables read by Start.
const (
	// EnvBinDir names a directory holding kube-apiserver, etcd and kubectl;
	// it overrides the hack/kube-bins.sh cache.
	EnvBinDir = "LBD_KUBE_BINDIR"
	// EnvRequire, when set to anything but "" or "0", turns a skip for
	// missing binaries into a test failure (for CI).
	EnvRequire = "LBD_REQUIRE_KUBE"
	// EnvBuild=1 lets Start run hack/kube-bins.sh to build missing binaries
	// (several minutes on a cold cache).
	EnvBuild = "LBD_KUBE_BUILD"
)

const (
	binScript  = "hack/kube-bins.sh"
	modulePath = "github.com/lbdproject/lbd"
)

// errUnavailable marks "binaries are not there", which skips a test unless
// EnvRequire is set; any other error fails it.
var errUnavailable = errors.New("kube-apiserver/etcd binaries unavailable")

// binDir finds the directory with the binaries, in order: the WithBinDir
// option, $LBD_KUBE_BINDIR, the hack/kube-bins.sh cache (building it first
// when LBD_KUBE_BUILD=1).
func binDir(ctx context.Context, t testing.TB, explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv(EnvBinDir)
	}
	if explicit != "" {
		if err := checkBinaries(explicit); err != nil {
			// An explicit directory without binaries is a setup
			// mistake, not a reason to skip: %v drops errUnavailable.
			return "", fmt.Errorf("%s=%q: %v", EnvBinDir, explicit, err)
		}
		return explicit, nil
	}

	script, err := findScript()
	if err != nil {
		return "", fmt.Errorf("%w: %v; set %s to a directory with kube-apiserver and etcd",
			errUnavailable, err, EnvBinDir)
	}
	dir, checkErr := runScript(ctx, script, "--check")
	if checkErr == nil {
		return dir, checkBinaries(dir)
	}
	if os.Getenv(EnvBuild) != "1" {
		return "", fmt.Errorf("%w: not built yet; run %s once (many minutes cold, then cached per version), "+
			"or set %s=1 to build from the test, or %s to a directory with them",
			errUnavailable, script, EnvBuild, EnvBinDir)
	}
	t.Logf("kubetest: %s=1, building with %s (~15 min with a cold Go build cache)", EnvBuild, script)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok && time.Until(deadline) < 20*time.Minute {
			t.Logf("kubetest: the test deadline is in %v; a cold build may outlast it "+
				"(it keeps running and fills the cache; or pass -timeout 30m)",
				time.Until(deadline).Round(time.Second))
		}
	}
	dir, err = runScript(ctx, script)
	if err != nil {
		return "", fmt.Errorf("building kube binaries: %w", err)
	}
	return dir, checkBinaries(dir)
}

// checkBinaries checks for what Start needs; kubectl is built by the script
// for demos but not needed here.
func checkBinaries(dir string) error {
	for _, name := range [...]string{"kube-apiserver", "etcd"} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%w: %v", errUnavailable, err)
		}
		if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%w: %s is not an executable file", errUnavailable, p)
		}
	}
	return nil
}

// runScript runs hack/kube-bins.sh and returns the last line of its stdout.
func runScript(ctx context.Context, script string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err,
			tail(stderr.Bytes(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("%s printed no directory", script)
	}
	return dir, nil
}

// findScript walks up from the working directory (a package directory under
// go test) to the lbd module root and returns its hack/kube-bins.sh.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && isLBDModule(mod) {
			script := filepath.Join(dir, binScript)
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("module root %s has no %s: %w", dir, binScript, err)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s module root above the working directory", modulePath)
		}
		dir = parent
	}
}

func isLBDModule(gomod []byte) bool {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == modulePath
		}
	}
	return false
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
