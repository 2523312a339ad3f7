package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
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
	for _, k := range schemaKeys() {
		if i := strings.Index(k, "node_selector."); i >= 0 {
			k = k[i:]
		}
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/config.md does not document `%s`", k)
		}
	}
}

// schemaKeys lists every key of the schema as a dotted path, lists marked
// with [] (e.g. "bgp.peers[].hold_time").
func schemaKeys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			tag := f.Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			path := join(prefix, tag)
			out = append(out, path)
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !isScalar(ft.Elem()):
				walk(ft.Elem(), path+"[]")
			case ft.Kind() == reflect.Struct && !isScalar(ft):
				walk(ft, path)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// isScalar reports whether values of t are written as one YAML scalar.
func isScalar(t reflect.Type) bool {
	return t == addrType || t == reflect.TypeFor[time.Duration]() || reflect.PointerTo(t).Implements(unmarshalerType)
}

// TestDocsNameOnlyRealKeys: every configuration key a document names in
// code (`bgp.peers[0].hold_time`, `l2.handover_grace`) exists in the
// schema, so no doc sends an operator to a key lbd would reject.
func TestDocsNameOnlyRealKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range schemaKeys() {
		known[k] = true
		if i := strings.Index(k, "node_selector."); i >= 0 {
			known[k[i:]] = true
		}
	}
	sections := map[string]bool{}
	for _, k := range schemaKeys() {
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
