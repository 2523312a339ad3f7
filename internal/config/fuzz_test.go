package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the loader arbitrary bytes, seeded with every fixture and
// the shipped example: it must never panic, and it must either return a
// configuration or an Errors value, never both and never neither.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	seeds = append(seeds, "../../etc/lbd.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := testOptions.Parse("fuzz.yaml", data)
		var errs Errors
		switch {
		case err == nil && c == nil:
			t.Fatal("no config and no error")
		case err != nil && c != nil:
			t.Fatal("both a config and an error")
		case err != nil && !errors.As(err, &errs):
			t.Fatalf("error of type %T: %v", err, err)
		case err != nil && len(errs) == 0:
			t.Fatal("empty Errors")
		}
	})
}
