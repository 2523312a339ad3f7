package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVersionSortsForDpkg runs hack/version.sh in a scratch repository
// through its life (commits before any tag, a tag, commits after it) and
// checks the version of each against the next with dpkg's own comparison:
// an upgrade between any two is an upgrade for dpkg (and rpm, whose ~ and
// + rules agree here).
func TestVersionSortsForDpkg(t *testing.T) {
	for _, tool := range []string{"git", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	script, err := os.ReadFile("../hack/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(filepath.Join(dir, "hack"), 0o755)
	os.WriteFile(filepath.Join(dir, "hack", "version.sh"), script, 0o755)
	run("git", "init", "-q")
	commit := func(i int) {
		os.WriteFile(filepath.Join(dir, "f"), []byte{byte(i)}, 0o644)
		run("git", "add", "-A")
		run("git", "commit", "-q", "-m", "c")
	}
	var versions []string
	for i := range 3 {
		commit(i)
		versions = append(versions, run("hack/version.sh"))
	}
	run("git", "tag", "v0.1.0")
	versions = append(versions, run("hack/version.sh"))
	commit(3)
	versions = append(versions, run("hack/version.sh"))
	commit(4)
	versions = append(versions, run("hack/version.sh"))
	run("git", "tag", "v0.2.0")
	versions = append(versions, run("hack/version.sh"))
	os.WriteFile(filepath.Join(dir, "f"), []byte("dirty"), 0o644)
	dirty := run("hack/version.sh")

	shapes := []string{`^0\.1\.0~git1\.[0-9a-f]{7}$`, `^0\.1\.0~git2\.`, `^0\.1\.0~git3\.`, `^0\.1\.0$`, `^0\.1\.0\+git1\.[0-9a-f]{7}$`, `^0\.1\.0\+git2\.`, `^0\.2\.0$`}
	for i, v := range versions {
		if !regexp.MustCompile(shapes[i]).MatchString(v) {
			t.Errorf("version %d: %q, want %s", i, v, shapes[i])
		}
		if i > 0 {
			if err := exec.Command("dpkg", "--compare-versions", versions[i-1], "lt", v).Run(); err != nil {
				t.Errorf("dpkg does not sort %q before %q", versions[i-1], v)
			}
		}
	}
	if dirty != "0.2.0.dirty" {
		t.Errorf("a dirty tree: %q", dirty)
	}
}
