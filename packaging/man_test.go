package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lbdproject/lbd/packaging"
)

// TestManPages makes lbd(8) and lbd.yaml(5) as `make man` does, from the
// binary's own help and docs/config.md, and checks that groff reads them
// without a warning, that lbd(8) has every subcommand and every flag its
// -h shows, and that lbd.yaml(5) has every section of docs/config.md.
func TestManPages(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed (apt-get install groff-base)")
	}
	dir := t.TempDir()
	bin := packaging.LbdBinary(t)
	gen := exec.Command("go", "run", "./hack/man", "-lbd", bin, "-config", "docs/config.md", "-o", dir)
	gen.Dir = ".."
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("hack/man: %v\n%s", err, out)
	}
	render := func(page string) string {
		t.Helper()
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", filepath.Join(dir, page))
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", page, err, stderr.String())
		}
		// Undo groff's overstrikes and hyphenation so words can be found.
		text := regexp.MustCompile(".\b").ReplaceAllString(string(out), "")
		return strings.Join(strings.Fields(strings.ReplaceAll(text, "\u2010\n", "")), " ")
	}
	page8 := render("lbd.8")
	usage, _ := exec.Command(bin, "help").Output()
	subs := regexp.MustCompile(`(?m)^  lbd ([a-z-]+)`).FindAllStringSubmatch(string(usage), -1)
	if len(subs) < 8 {
		t.Fatalf("lbd help lists %d subcommands:\n%s", len(subs), usage)
	}
	flagRE := regexp.MustCompile(`(?m)^  (-[A-Za-z0-9-]+)`)
	for _, m := range subs {
		if !strings.Contains(page8, "lbd "+m[1]) {
			t.Errorf("lbd(8) lacks the subcommand %s", m[1])
		}
		help, _ := exec.Command(bin, m[1], "-h").CombinedOutput()
		for _, f := range flagRE.FindAllStringSubmatch(string(help), -1) {
			if !strings.Contains(page8, f[1]) {
				t.Errorf("lbd(8) lacks %s's flag %s", m[1], f[1])
			}
		}
	}
	page5 := render("lbd.yaml.5")
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^## (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		if !strings.Contains(page5, strings.ToUpper(m[1])) {
			t.Errorf("lbd.yaml(5) lacks the section %q", m[1])
		}
	}
	for _, key := range []string{"hold_time", "handover_grace", "local_api_server", "avoid_buggy_ips"} {
		if !strings.Contains(page5, key) {
			t.Errorf("lbd.yaml(5) lacks %s", key)
		}
	}
}
