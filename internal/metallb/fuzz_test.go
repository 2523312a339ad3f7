package metallb

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzMetalLBConvert feeds the converter arbitrary bytes, seeded with every
// fixture: it must never panic, must return either a result or an
// *InputError, must always write YAML that reads back, and, when it reports
// no error, must have written a file lbd accepts.
func FuzzMetalLBConvert(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(poolL2 + peerA))
	f.Add([]byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: \"a\\nb: c\"}\nspec: {addresses: [192.0.2.0/28]}\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Convert(Input{Name: "fuzz.yaml", Data: data})
		var ie *InputError
		switch {
		case err != nil && !errors.As(err, &ie):
			t.Fatalf("error of type %T: %v", err, err)
		case err != nil && r != nil:
			t.Fatal("both a result and an error")
		case err == nil && r == nil:
			t.Fatal("neither a result nor an error")
		case err != nil:
			return
		}
		var out any
		if err := yaml.Unmarshal(r.Config, &out); err != nil {
			t.Fatalf("the output is not YAML: %v\n%s", err, r.Config)
		}
		if len(r.Errors) == 0 {
			load(t, r)
		}
	})
}
