package cliflags

import (
	"bytes"
	"flag"
	"slices"
	"testing"
)

func TestParseReadsPrintDefaults(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("c", "/etc/lbd.yaml", "configuration `file`")
	fs.Bool("v", false, "say more")
	fs.Bool("strict", false, "treat warnings as errors")
	fs.Duration("timeout", 0, "how long to wait")
	var b bytes.Buffer
	fs.SetOutput(&b)
	fs.PrintDefaults()
	want := []Flag{
		{"c", "file", `configuration file (default "/etc/lbd.yaml")`},
		{"strict", "", "treat warnings as errors"},
		{"timeout", "duration", "how long to wait"},
		{"v", "", "say more"},
	}
	if got := Parse(b.String()); !slices.Equal(got, want) {
		t.Errorf("Parse of\n%s\n= %+v\nwant %+v", b.String(), got, want)
	}
}
