package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestThirdPartyLicenses regenerates the notice of the licences of every
// module linked into lbd and compares it with the one shipped: a module
// added, removed or upgraded in go.mod without `go run ./hack/licenses -o
// packaging/third-party-licenses.txt` fails here, and so does a module
// without a licence (hack/licenses refuses it).
func TestThirdPartyLicenses(t *testing.T) {
	cmd := exec.Command("go", "run", "./hack/licenses")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./hack/licenses: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile("third-party-licenses.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("packaging/third-party-licenses.txt is stale: run go run ./hack/licenses -o packaging/third-party-licenses.txt")
	}
	for _, mod := range []string{"k8s.io/client-go", "github.com/osrg/gobgp/v3", "github.com/mdlayher/arp", "github.com/vishvananda/netlink"} {
		if !bytes.Contains(want, []byte("\n"+mod+" ")) {
			t.Errorf("the notice does not list %s", mod)
		}
	}
}

// TestCopyrightFile checks the shape of the DEP-5 copyright file that the
// .deb ships: the format line first, a Files: * paragraph with its
// copyright and licence, and the licence's own paragraph.
func TestCopyrightFile(t *testing.T) {
	data, err := os.ReadFile("copyright")
	if err != nil {
		t.Fatal(err)
	}
	paras := strings.Split(strings.TrimSpace(string(data)), "\n\n")
	field := func(p, name string) string {
		for line := range strings.SplitSeq(p, "\n") {
			if v, ok := strings.CutPrefix(line, name+": "); ok {
				return v
			}
		}
		return ""
	}
	if field(paras[0], "Format") != "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" || field(paras[0], "Upstream-Name") != "lbd" {
		t.Errorf("header paragraph:\n%s", paras[0])
	}
	var files, licence bool
	for _, p := range paras[1:] {
		switch {
		case field(p, "Files") == "*":
			files = field(p, "Copyright") != "" && field(p, "License") == "Apache-2.0"
		case field(p, "License") == "Apache-2.0":
			licence = strings.Contains(p, "/usr/share/common-licenses/Apache-2.0")
		}
	}
	if !files || !licence {
		t.Errorf("want a Files: * paragraph (Copyright, License: Apache-2.0) and an Apache-2.0 License paragraph:\n%s", data)
	}
	lic, err := os.ReadFile("../LICENSE")
	if err != nil || !bytes.Contains(lic, []byte("Apache License")) || !bytes.Contains(lic, []byte("Version 2.0, January 2004")) {
		t.Errorf("LICENSE is not the Apache License 2.0: %v", err)
	}
}
