package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocExamplesParse checks that every YAML example in docs/ is a valid
// configuration.
func TestDocExamplesParse(t *testing.T) {
	files := []string{"../../docs/config.md", "../../README.md", "../../docs/bgp.md"}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllStringSubmatch(string(data), -1) {
			n++
			if _, err := testOptions.Parse(f, []byte(m[1])); err != nil {
				t.Errorf("%s: example %d does not parse:\n%v", f, i+1, err)
			}
		}
	}
	if n < 3 {
		t.Errorf("found only %d YAML examples", n)
	}
}

// TestDocCoversEveryKey keeps docs/config.md complete: every key of the
// schema must appear there, in backquotes, with its full path. Keys under
// a node selector are documented once, as node_selector.KEY.
func TestDocCoversEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, k := range SchemaKeys() {
		if i := strings.Index(k, "node_selector."); i >= 0 {
			k = k[i:]
		}
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/config.md does not document `%s`", k)
		}
	}
}

// TestDocDefaultsFromCode: the default column of docs/config.md is what
// hack/configdoc writes from the code (`make docs`), so a default changed
// in applyDefaults cannot leave the reference behind; and the defaults
// stated in words for optional booleans are what their methods say.
func TestDocDefaultsFromCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	out, err := WriteDocDefaults(doc)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(doc) {
		t.Errorf("docs/config.md's default column differs from the code's defaults: run make docs and commit\n%s", firstDiff(string(doc), string(out)))
	}
	// A stale default is caught: write another value into one row.
	stale := strings.Replace(string(doc), "| `l2.handover_grace` | duration 0s-20s | `2s` |", "| `l2.handover_grace` | duration 0s-20s | `3s` |", 1)
	if stale == string(doc) {
		t.Fatal("the l2.handover_grace row is not where this test expects it")
	}
	if again, _ := WriteDocDefaults([]byte(stale)); string(again) != string(doc) {
		t.Errorf("a stale default was not rewritten:\n%s", firstDiff(string(doc), string(again)))
	}
	d, _ := DocDefaults()
	for key, on := range map[string]bool{
		"pools[].auto_assign":                  Pool{}.AutoAssignEnabled(),
		"l2.conflict_detection":                L2{}.ConflictDetectionEnabled(),
		"bgp.peers[].graceful_restart.enabled": GracefulRestart{}.IsEnabled(),
	} {
		if want := fmt.Sprintf("`%v`", on); d[key] != want {
			t.Errorf("%s: the docs say %s, the code %s", key, d[key], want)
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  file: %s\n  code: %s", i+1, al[i], bl[i])
		}
	}
	return "the lengths differ"
}

// TestDocsNameOnlyRealKeys: every configuration key a document names in
// code (`bgp.peers[0].hold_time`, `l2.handover_grace`) exists in the
// schema, so no doc sends an operator to a key lbd would reject.
func TestDocsNameOnlyRealKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range SchemaKeys() {
		known[k] = true
		if i := strings.Index(k, "node_selector."); i >= 0 {
			known[k[i:]] = true
		}
	}
	sections := map[string]bool{}
	for _, k := range SchemaKeys() {
		sections[strings.SplitN(k, ".", 2)[0]] = true
	}
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	// Inline code spans, each whole (fenced blocks removed first, so every
	// backquote pairs), whose content is a dotted key.
	spanRE := regexp.MustCompile("`([^`\n]+)`")
	fenceRE := regexp.MustCompile("(?s)```.*?```")
	keyRE := regexp.MustCompile(`^[a-z_][a-z0-9_]*(?:\[[0-9]*\])?(?:\.[a-z_][a-z0-9_]*(?:\[[0-9]*\])?)+$`)
	index := regexp.MustCompile(`\[[0-9]*\]`)
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range spanRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(string(data), ""), -1) {
			if !keyRE.MatchString(m[1]) {
				continue
			}
			key := index.ReplaceAllString(m[1], "[]")
			if !sections[strings.SplitN(strings.TrimSuffix(key, "[]"), ".", 2)[0]] && !strings.HasPrefix(key, "node_selector.") {
				continue // not a configuration key (a file name, a Go name)
			}
			checked++
			if !known[key] && !known[strings.TrimSuffix(key, "[]")] {
				t.Errorf("%s: `%s`: no such configuration key", filepath.Base(f), m[1])
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d keys found in the docs", checked)
	}
}

// TestDocsListRestartOnly: the sentences of docs/config.md and
// docs/ansible.md that list the settings a reload refuses name exactly
// RestartOnly's.
func TestDocsListRestartOnly(t *testing.T) {
	var want []string
	for _, r := range RestartOnly {
		want = append(want, r.Key)
	}
	slices.Sort(want)
	for file, marker := range map[string]string{
		"../../docs/config.md":  "a reload that changes them is refused:",
		"../../docs/ansible.md": "which take a restart",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(data)), " ")
		i := strings.Index(text, marker)
		if i < 0 {
			t.Errorf("%s: no sentence with %q", file, marker)
			continue
		}
		// The sentence around the marker (a key's own dots are never
		// followed by a space).
		start := strings.LastIndex(text[:i], ". ") + 1
		end := len(text)
		if e := strings.Index(text[i:], ". "); e >= 0 {
			end = i + e
		}
		var got []string
		for _, m := range regexp.MustCompile("`([a-z_.]+)`").FindAllStringSubmatch(text[start:end], -1) {
			if !slices.Contains(got, m[1]) {
				got = append(got, m[1])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v as restart-only, the code %v:\n%s", file, got, want, text[start:end])
		}
	}
}
