package config

import (
	"os"
	"reflect"
	"regexp"
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
