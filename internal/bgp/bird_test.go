package bgp_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// birdConfig is BIRD 2 as the top-of-rack router: dynamic passive
// neighbours from a range, graceful restart, and ECMP in the kernel
// (merge paths).
func birdConfig() string {
	return fmt.Sprintf(`router id %s;
log stderr all;
protocol device {}
protocol kernel k4 { ipv4 { export all; }; merge paths on; }
protocol kernel k6 { ipv6 { export all; }; merge paths on; }
template bgp k8s {
	local as %d;
	passive on;
	hold time 90;
	keepalive time 30;
	graceful restart on;
	graceful restart time 120;
}
protocol bgp nodes4 from k8s {
	neighbor range 198.51.100.0/24 as %d;
	dynamic name "n4_";
	ipv4 { import all; export none; };
}
protocol bgp nodes6 from k8s {
	neighbor range 2001:db8:1::/64 as %d;
	dynamic name "n6_";
	ipv6 { import all; export none; };
}
`, routerV4, routerAS, nodeAS, nodeAS)
}

type bird struct {
	t    testing.TB
	sock string
}

func startBIRD(t testing.TB, h *netlab.Host, conf string) *bird {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("BIRD is not installed (apt-get install bird2)")
	}
	dir, err := os.MkdirTemp("", "lbd-bird-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "bird.conf")
	os.WriteFile(file, []byte(conf), 0o644)
	b := &bird{t: t, sock: filepath.Join(dir, "bird.ctl")}
	cmd := h.Command("bird", "-f", "-c", file, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("bird output:\n%s", out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.birdc("show status"); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("bird did not come up:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bird) birdc(cmd string) (string, error) {
	out, err := exec.Command("birdc", "-s", b.sock, cmd).CombinedOutput()
	return string(out), err
}

// established counts the dynamic BGP protocols in state Established.
func (b *bird) established() int {
	b.t.Helper()
	out, err := b.birdc("show protocols")
	if err != nil {
		b.t.Fatalf("birdc show protocols: %v\n%s", err, out)
	}
	n := 0
	for l := range strings.SplitSeq(out, "\n") {
		if (strings.HasPrefix(l, "n4_") || strings.HasPrefix(l, "n6_")) && strings.Contains(l, "Established") {
			n++
		}
	}
	return n
}

func (b *bird) waitEstablished(d time.Duration, n int) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for b.established() != n {
		if time.Now().After(deadline) {
			out, _ := b.birdc("show protocols")
			b.t.Fatalf("BIRD has %d sessions Established after %v, want %d:\n%s", b.established(), d, n, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBIRD: the core scenario of TestFRR with BIRD 2 as the router, so
// lbd is proven against two independent BGP implementations.
func TestBIRD(t *testing.T) {
	netlab.Need(t, "birdc")
	b := newLab(t)
	r := startBIRD(t, b.router, birdConfig())
	helperPath(t)
	var sp []*speaker
	for _, n := range b.nodes {
		sp = append(sp, b.startSpeaker(n, nodeConfig(nodeAS, "")))
	}
	for _, s := range sp {
		s.announce(svcV4+"/32", svcV6+"/128")
	}
	r.waitEstablished(10*time.Second, 6)
	b.waitHops(svcV4, 5*time.Second, nodeV4...)
	b.waitHops(svcV6, 5*time.Second, nodeV6...)
	if out, _ := r.birdc("show route " + svcV4 + "/32 all"); !strings.Contains(out, "BGP.next_hop: "+nodeV4[0]) {
		t.Errorf("birdc show route:\n%s", out)
	}

	sp[2].announce()
	d := b.waitHops(svcV4, time.Second, nodeV4[0], nodeV4[1])
	t.Logf("withdrawn route left the router's FIB in %v", d.Round(time.Millisecond))
	sp[2].announce(svcV4+"/32", svcV6+"/128")
	b.waitHops(svcV4, 5*time.Second, nodeV4...)

	sp[1].stop()
	d = b.waitHops(svcV4, time.Second, nodeV4[0], nodeV4[2])
	b.waitHops(svcV6, time.Second, nodeV6[0], nodeV6[2])
	t.Logf("stopped node's next hop left in %v", d.Round(time.Millisecond))

	n1 := sp[0]
	v4, v6 := checkRestartKeepsRoute(t, b, func() {
		n1.kill()
		n1 = b.restartSpeaker(b.nodes[0], nodeConfig(nodeAS, ""), svcV4+"/32", svcV6+"/128")
		r.waitEstablished(10*time.Second, 4)
	}, 0, 2)
	keptRoute(t, "kill -9", v4, v6)

	// The negative control: without graceful restart BIRD drops the
	// crashed node's routes, and the check sees it.
	n1.stop()
	n1 = b.startSpeaker(b.nodes[0], noGRConfig())
	n1.announce(svcV4+"/32", svcV6+"/128")
	r.waitEstablished(10*time.Second, 4)
	b.waitHops(svcV4, 5*time.Second, nodeV4[0], nodeV4[2])
	b.waitHops(svcV6, 5*time.Second, nodeV6[0], nodeV6[2])
	v4, v6 = checkRestartKeepsRoute(t, b, func() {
		n1.kill()
		n1 = b.restartSpeaker(b.nodes[0], noGRConfig(), svcV4+"/32", svcV6+"/128")
		r.waitEstablished(10*time.Second, 4)
	}, 0, 2)
	lostRoute(t, v4, v6)
}
