package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanup runs `lbd cleanup` in a network namespace holding the VIPs a
// killed lbd left behind: they go, the node's own address stays, and a
// second run finds nothing to do.
func TestCleanup(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	ns := fmt.Sprintf("lbdt-%06d-cleanup", rand.IntN(1_000_000))
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ip("-n", ns, "link", "set", "v0", "up")
	ip("-n", ns, "addr", "add", "192.0.2.1/24", "dev", "v0")
	ip("-n", ns, "addr", "add", "192.0.2.10/32", "dev", "v0")
	ip("-n", ns, "addr", "add", "2001:db8::10/128", "dev", "v0", "nodad")

	// Broken on purpose after "lbd started": cleanup must still work.
	cfg := filepath.Join(t.TempDir(), "lbd.yaml")
	write(t, cfg, "version: 1\ncontrol_plane:\n  addresses: [192.0.2.10, 2001:db8::10]\n  interface: v0\nlog: {level: loud}\n")
	for run := 1; run <= 2; run++ {
		out, err := exec.Command("ip", "netns", "exec", ns, lbdBin, "cleanup", "-c", cfg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "absent from v0") {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		addrs := ip("-n", ns, "-o", "addr", "show", "dev", "v0")
		if strings.Contains(addrs, "192.0.2.10/32") || strings.Contains(addrs, "2001:db8::10/128") {
			t.Errorf("run %d: a VIP is still there:\n%s", run, addrs)
		}
		if !strings.Contains(addrs, "192.0.2.1/24") {
			t.Errorf("run %d: the node's own address went too:\n%s", run, addrs)
		}
	}
}
