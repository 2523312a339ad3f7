package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lbdproject/lbd/internal/cliflags"
	"github.com/lbdproject/lbd/internal/event"
)

// docFiles are the documents users read: the README, docs/ and this
// directory's README.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md", "README.md")
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(data)
	}
	return out
}

var (
	// codeSpanRE finds inline code and the lines of fenced code blocks.
	codeSpanRE = regexp.MustCompile("`([^`\n]+)`")
	fenceRE    = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	// An lbd command where a shell would run it: at the start of the code,
	// after a prompt, sudo, a pipe or ;, &&, $(, or as ExecStart=/usr/bin/lbd.
	lbdCmdRE    = regexp.MustCompile(`(?:^\s*(?:\$ |# )?|sudo |[|;(]\s*|&&\s*|=|/usr/bin/|/usr/local/bin/)lbd ([a-z][a-z-]*)((?: +[^\s|;&#)]+)*)`)
	flagTokenRE = regexp.MustCompile(`^--?([a-z][a-z-]*)(?:=.*)?$`)
	metricRE    = regexp.MustCompile(`\blbd_[a-z0-9_]*[a-z0-9]\b`)
	eventRE     = regexp.MustCompile(`\b(?:LBD_EVENT|event)=([a-z_]+)`)
)

// code returns every piece of code in a Markdown text: inline spans and
// the lines of fenced blocks.
func code(md string) []string {
	var out []string
	for _, m := range fenceRE.FindAllStringSubmatch(md, -1) {
		out = append(out, strings.Split(m[1], "\n")...)
	}
	for _, m := range codeSpanRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(md, ""), -1) {
		out = append(out, m[1])
	}
	return out
}

// lbdFlags returns each subcommand's flags, from the binary's own help.
func lbdFlags(t *testing.T) map[string][]string {
	t.Helper()
	bin := lbdBinary(t)
	usage, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	subs := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^  lbd ([a-z-]+)`).FindAllStringSubmatch(string(usage), -1) {
		help, _ := exec.Command(bin, m[1], "-h").CombinedOutput()
		flags := []string{"h", "help"}
		for _, f := range cliflags.Parse(string(help)) {
			flags = append(flags, f.Name)
		}
		subs[m[1]] = flags
	}
	if len(subs) < 8 {
		t.Fatalf("lbd help lists %d subcommands", len(subs))
	}
	return subs
}

// TestDocsNameWhatExists fails when a document names, in code, an lbd
// subcommand or flag, a metric or an event class that lbd does not have:
// docs must not promise what the binary cannot do.
func TestDocsNameWhatExists(t *testing.T) {
	t.Parallel()
	subs := lbdFlags(t)
	// lbd_ names are metrics, or the Ansible role's variables.
	metrics := map[string]bool{}
	specs, err := os.ReadFile("ansible/roles/lbd/meta/argument_specs.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+(lbd_[a-z0-9_]+):`).FindAllStringSubmatch(string(specs), -1) {
		metrics[m[1]] = true
	}
	for _, m := range definedMetrics(t) {
		metrics[m] = true
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			metrics[m+s] = true
		}
	}
	events := map[string]bool{}
	for c := range event.MessageIDs {
		events[string(c)] = true
	}
	checked := 0
	for file, md := range docFiles(t) {
		name := filepath.Base(file)
		for _, c := range code(md) {
			for _, m := range lbdCmdRE.FindAllStringSubmatch(c, -1) {
				sub := m[1]
				flags, ok := subs[sub]
				if !ok {
					t.Errorf("%s: `%s`: lbd has no subcommand %q", name, strings.TrimSpace(c), sub)
					continue
				}
				checked++
				for tok := range strings.FieldsSeq(m[2]) {
					f := flagTokenRE.FindStringSubmatch(tok)
					if f != nil && !slices.Contains(flags, f[1]) {
						t.Errorf("%s: `%s`: lbd %s has no flag %s", name, strings.TrimSpace(c), sub, tok)
					}
				}
			}
			for _, m := range metricRE.FindAllString(c, -1) {
				checked++
				if !metrics[m] {
					t.Errorf("%s: `%s`: lbd exports no metric %s, and the Ansible role has no such variable", name, strings.TrimSpace(c), m)
				}
			}
			for _, m := range eventRE.FindAllStringSubmatch(c, -1) {
				checked++
				if !events[m[1]] {
					t.Errorf("%s: `%s`: lbd logs no event class %q", name, strings.TrimSpace(c), m[1])
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d names checked: the scan reads the wrong files", checked)
	}
	t.Logf("%d subcommands, flags, metrics and events named in the docs checked", checked)
}

func TestDocsCheckCanFail(t *testing.T) {
	md := "Run `lbd chekc -c x` or `kubectl -n lbd get lease` or:\n\n```sh\nsudo lbd status --format json\n```\n"
	var found []string
	for _, c := range code(md) {
		for _, m := range lbdCmdRE.FindAllStringSubmatch(c, -1) {
			found = append(found, m[1]+strings.Join(strings.Fields(m[2]), ","))
		}
	}
	if !slices.Equal(found, []string{"status--format,json", "chekc-c,x"}) {
		t.Errorf("found %q", found)
	}
}
