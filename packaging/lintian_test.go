package packaging_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestLintian runs Debian's lintian on the .deb: no error and no warning,
// beyond the overrides the package ships (packaging/lintian/lbd, each with
// its reason).
func TestLintian(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("lintian"); err != nil {
		if os.Getenv("LBD_REQUIRE_TOOLS") != "" {
			t.Fatal("lintian is not installed (apt-get install lintian)")
		}
		t.Skip("lintian is not installed (apt-get install lintian)")
	}
	deb := debFile(t)
	out, err := exec.Command("lintian", "--fail-on", "error,warning", "--info", deb).CombinedOutput()
	var findings []string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			findings = append(findings, strings.TrimSpace(line))
		}
	}
	if err != nil || len(findings) > 0 {
		t.Errorf("lintian %s: %v\n%s", deb, err, out)
	}
}
