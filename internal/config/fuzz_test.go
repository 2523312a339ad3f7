package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
		// The same bytes give the same answer.
		c2, err2 := testOptions.Parse("fuzz.yaml", data)
		if fmt.Sprint(err) != fmt.Sprint(err2) || (c == nil) != (c2 == nil) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			// Every problem names the file, and says what is wrong.
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Msg == "" || !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("a problem without its file or message: %#v", e)
				}
			}
			return
		}
		checkValid(t, c)
	})
}

// checkValid fails t unless c, which Parse accepted, holds what the rest of
// lbd relies on: pools with valid, ordered, non-overlapping ranges of one
// family each, unique pool names, and advertisements that name only
// pools that exist.
func checkValid(t *testing.T, c *Config) {
	t.Helper()
	pools := map[string]bool{}
	var ranges []Range
	for _, p := range c.Pools {
		if p.Name == "" || pools[p.Name] {
			t.Fatalf("pool name %q empty or repeated", p.Name)
		}
		pools[p.Name] = true
		if len(p.Addresses) == 0 {
			t.Fatalf("pool %q without addresses", p.Name)
		}
		for _, r := range p.Addresses {
			if !r.From.IsValid() || !r.To.IsValid() || r.From.Is4() != r.To.Is4() || r.To.Less(r.From) {
				t.Fatalf("pool %q: bad range %v", p.Name, r)
			}
			for _, o := range ranges {
				if r.Overlaps(o) {
					t.Fatalf("pool %q: %v overlaps %v", p.Name, r, o)
				}
			}
			ranges = append(ranges, r)
		}
	}
	for _, a := range c.L2.Advertisements {
		for _, p := range a.Pools {
			if !pools[p] {
				t.Fatalf("L2 advertisement %q names pool %q, which does not exist", a.Name, p)
			}
		}
	}
	for _, a := range c.BGP.Advertisements {
		for _, p := range a.Pools {
			if !pools[p] {
				t.Fatalf("BGP advertisement %q names pool %q, which does not exist", a.Name, p)
			}
		}
	}
}
