package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// envRequire, set to anything but "0" (scripts/test.sh does), makes a
// missing tool fail the tests that need it instead of skipping them.
const envRequire = "LBD_REQUIRE_TOOLS"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if v := os.Getenv(envRequire); v != "" && v != "0" {
		t.Fatalf(format+" (%s is set, so this fails instead of skipping)", append(args, envRequire)...)
	}
	t.Skipf(format, args...)
}

// promtool returns promtool: $LBD_PROMTOOL if set, else the one `make
// promtool` takes out of Debian's prometheus package into the tool cache
// (once, in seconds).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LBD_PROMTOOL"); p != "" {
		return p
	}
	if _, err := exec.LookPath("make"); err != nil {
		skipOrFail(t, "needs make to build the pinned promtool (apt-get install make)")
	}
	var stderr bytes.Buffer
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", "..", "promtool")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make promtool: %v\n%s", err, stderr.String())
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		t.Fatalf("make promtool printed no path\n%s", stderr.String())
	}
	return lines[len(lines)-1]
}

// lookTool returns the path of a tool Debian packages, or skips.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "needs %s (apt-get install %s)", name, pkg)
	}
	return p
}

// run runs a command in dir and returns its combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
