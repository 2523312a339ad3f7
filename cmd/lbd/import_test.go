package main

// Black-box tests of lbd import-metallb: what it writes where, and its exit
// codes, with the MetalLB manifests of internal/metallb/testdata.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const metallbTestdata = "../../internal/metallb/testdata"

func TestImportMetallb(t *testing.T) {
	t.Parallel()
	seed := func(f string) string { return filepath.Join(metallbTestdata, f) }
	data, err := os.ReadFile(seed("kubectl-list.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	list := string(data)
	const twoASNs = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 64513, peerASN: 64501, peerAddress: 192.0.2.2}
`
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string   // must contain; "" means must be empty
		stderr []string // must contain each
	}{
		{"seed guide files", []string{"import-metallb", seed("metallb-pool.yaml"), seed("metallb-l2.yaml"), seed("metallb-bgp.yaml")},
			"", 0, "version: 1\n", []string{"converted 4 MetalLB objects", "0 warnings, 0 errors"}},
		{"stdin with warnings", []string{"import-metallb"}, list, 0, "password_file: /etc/lbd/bgp-password-tor-switch",
			[]string{"warning: BGPPeer/tor-switch: spec.passwordSecret:", "1 warning, 0 errors", "create on every node, mode 0600"}},
		// The BFDProfile converts into the peer's bfd block.
		{"stdin BFD profile", []string{"import-metallb"}, list, 0, "      bfd:\n        transmit_interval: 300ms\n        receive_interval: 300ms\n        detect_multiplier: 3\n", nil},
		{"--strict with warnings", []string{"import-metallb", "--strict", "-"}, list, 1, "",
			[]string{"warning: BGPPeer/tor-switch: spec.passwordSecret:", "--strict: the 1 warning above counts as an error; nothing written"}},
		{"--strict after the file", []string{"import-metallb", seed("kubectl-list.yaml"), "--strict"}, "", 1, "", []string{"--strict"}},
		{"--strict without warnings", []string{"import-metallb", "-strict", seed("metallb-pool.yaml"), seed("metallb-l2.yaml")}, "", 0, "pools:", nil},
		{"conversion errors", []string{"import-metallb"}, twoASNs, 1, "",
			[]string{"error: BGPPeer/b: spec.myASN: 64513 differs from BGPPeer/a's 64512", "nothing written"}},
		{"not MetalLB", []string{"import-metallb", "-"}, "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", 2, "",
			[]string{"<stdin>: no MetalLB configuration found"}},
		{"not YAML", []string{"import-metallb"}, "a: [b\n", 2, "", []string{"not YAML"}},
		{"missing file", []string{"import-metallb", seed("absent.yaml")}, "", 2, "", []string{"no such file"}},
		{"stdin twice", []string{"import-metallb", "-", "-"}, list, 2, "", []string{"given twice"}},
		{"bad flag", []string{"import-metallb", "--loose"}, "", 2, "", []string{"Usage: lbd import-metallb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := lbdStdin(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if tc.stdout == "" && out != "" || !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out, tc.stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}

// What import-metallb writes passes lbd check on this machine.
func TestImportMetallbThenCheck(t *testing.T) {
	t.Parallel()
	code, out, errOut := lbd(t, "import-metallb",
		filepath.Join(metallbTestdata, "metallb-pool.yaml"),
		filepath.Join(metallbTestdata, "metallb-l2.yaml"),
		filepath.Join(metallbTestdata, "metallb-bgp.yaml"))
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "lbd.yaml")
	write(t, path, out)
	code, out, errOut = lbd(t, "check", "-c", path)
	if code != 0 || !strings.Contains(out, "1 pool (51 IPv4 addresses); 1 L2 advertisement; BGP AS64512 with 1 peer") {
		t.Errorf("check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
