package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/netlab"
)

// TestBGPPasswordRotation: three lbd nodes peer with FRR over TCP MD5,
// each with its own password file. Rotating the password on both sides
// (vtysh on the router; the files rewritten by rename, as Vault Agent and
// Ansible do) brings every session back, with the new password's
// fingerprint in lbd status and no reload by hand: lbd watches the files.
// Rotating only one node's file leaves that session down, the others up,
// and the node's status and log say why (TCP MD5 mismatch); the password
// itself appears nowhere.
func TestBGPPasswordRotation(t *testing.T) {
	labParallel(t, 45*time.Second) // a lab of its own, beside the others (labsched_test.go)
	netlab.Need(t, "vtysh")
	dir := t.TempDir()
	pwFile := func(node string) string { return filepath.Join(dir, node+".pw") }
	setPassword := func(node, pw string) {
		tmp := pwFile(node) + ".tmp"
		if err := os.WriteFile(tmp, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, pwFile(node)); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []string{"node-a", "node-b", "node-c"}
	for _, n := range nodes {
		setPassword(n, "first-s3cret")
	}
	// Each node's configuration names its own file.
	l := newL2Lab(t, fmt.Sprintf(`bgp:
  asn: 64512
  peers:
    - {name: tor, address: %s, asn: 64501, connect_retry: 1s, password_file: %s/{{node}}.pw}
`, torAddr, dir))
	tor := l.lab.AddHost("tor", torAddr+"/24")
	f := netlab.StartFRR(t, tor, strings.Replace(torConfig, " neighbor K8S timers 30 90\n", " neighbor K8S timers 30 90\n neighbor K8S password first-s3cret\n", 1))
	all := nodeAddrs(nodes...)
	f.WaitEstablished(20*time.Second, all...)
	fingerprint := func(n *labNode) string {
		st := n.d.status(t)
		if st.BGP == nil || len(st.BGP.Peers) != 1 {
			return ""
		}
		return st.BGP.Peers[0].PasswordFingerprint
	}
	for _, n := range l.nodes {
		if got := fingerprint(n); got != config.Fingerprint("first-s3cret") {
			t.Errorf("%s shows fingerprint %q, want the first password's", n.name, got)
		}
	}

	// Both sides rotate.
	if out, err := f.Vtysh("bgpd", "configure terminal\nrouter bgp 64501\nneighbor K8S password second-s3cret\nend"); err != nil {
		t.Fatalf("vtysh: %v\n%s", err, out)
	}
	for _, n := range nodes {
		setPassword(n, "second-s3cret")
	}
	start := time.Now()
	f.WaitEstablished(60*time.Second, all...)
	t.Logf("every session back %.1fs after both sides rotated", time.Since(start).Seconds())
	for _, n := range l.nodes {
		waitFor(t, n.name+"'s status to show the second password", func() bool { return fingerprint(n) == config.Fingerprint("second-s3cret") })
		if st := n.d.status(t); st.LastReload.Source != "file" || st.LastReload.Result != "success" {
			t.Errorf("%s's last reload: %+v, want a successful one from the file watch", n.name, st.LastReload)
		}
	}

	// Only node-a rotates: its session stays down, the others stay up.
	a := l.node("node-a")
	setPassword("node-a", "third-s3cret")
	waitFor(t, "node-a's session to go down", func() bool {
		_, up := f.Established()[nodeAddrs("node-a")[0]]
		return !up
	})
	var problem string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := a.d.status(t)
		if st.BGP != nil && len(st.BGP.Peers) == 1 {
			problem = st.BGP.Peers[0].Problem
			if strings.Contains(problem, "MD5") {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(problem, "TCP MD5") {
		t.Errorf("node-a's status problem %q does not name the TCP MD5 password", problem)
	}
	if !strings.Contains(a.d.logs(), "TCP MD5") {
		t.Error("node-a's log does not name the TCP MD5 password")
	}
	time.Sleep(5 * time.Second)
	est := f.Established()
	if _, up := est[nodeAddrs("node-a")[0]]; up {
		t.Error("node-a's session came up with a password the router does not have")
	}
	for _, n := range []string{"node-b", "node-c"} {
		if _, up := est[nodeAddrs(n)[0]]; !up {
			t.Errorf("%s's session went down when only node-a rotated", n)
		}
	}
	for _, n := range l.nodes {
		for _, pw := range []string{"first-s3cret", "second-s3cret", "third-s3cret"} {
			if strings.Contains(n.d.logs(), pw) || strings.Contains(fmt.Sprint(n.d.status(t)), pw) {
				t.Errorf("%s shows a password in its log or status", n.name)
			}
		}
	}
}
