package metallb

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMetalLBMigratingDoc keeps docs/migrating.md honest: every YAML block
// is either MetalLB configuration that converts without errors, or an lbd
// configuration that lbd accepts.
func TestMetalLBMigratingDoc(t *testing.T) {
	data, err := os.ReadFile("../../docs/migrating.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d YAML blocks", len(blocks))
	}
	for i, m := range blocks {
		text := m[1]
		if !strings.Contains(text, "apiVersion: metallb.io/") {
			// An lbd file: parse it the way the converter's output is parsed.
			load(t, &Result{Config: []byte(text)})
			continue
		}
		r, err := Convert(Input{Name: "doc", Data: []byte(text)})
		if err != nil || len(r.Errors) > 0 {
			t.Errorf("block %d does not convert: %v %v", i+1, err, r)
		}
	}
}
