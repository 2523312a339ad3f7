package main

// BGP announcement from `lbd run` on a real segment: the L2 lab (three
// nodes, a client, a real kube-apiserver) plus FRR as the top-of-rack
// router on the same switch.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/netlab"
)

const torAddr = "192.0.2.254"

// torConfig is FRR as a top-of-rack router for the lab's nodes.
const torConfig = `frr defaults traditional
hostname tor
log file %DIR%/bgpd.log
router bgp 64501
 bgp router-id 192.0.2.254
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor K8S peer-group
 neighbor K8S remote-as 64512
 neighbor K8S passive
 neighbor K8S timers 30 90
 bgp listen range 192.0.2.0/24 peer-group K8S
 address-family ipv4 unicast
  neighbor K8S activate
  maximum-paths 6
 exit-address-family
`

// bgpPeers is the bgp section every lab node gets: the router as peer,
// and the advertisements given.
func bgpPeers(ads string) string {
	return fmt.Sprintf(`bgp:
  asn: 64512
  peers:
    - {name: tor, address: %s, asn: 64501, connect_retry: 1s}
%s`, torAddr, ads)
}

const bgpAds = `  advertisements:
    - {name: lan, pools: [lan]}
`

// toBGP rewrites n's configuration with the pool announced by BGP instead
// of L2, and reloads it.
func (l *l2Lab) toBGP(n *labNode) {
	l.t.Helper()
	l.toBGPWith(n, bgpPeers(bgpAds))
}

// toBGPWith is toBGP with the bgp section given.
func (l *l2Lab) toBGPWith(n *labNode, bgpSection string) {
	l.t.Helper()
	write(l.root, n.path, fmt.Sprintf(`version: 1
node: {name: %s}
kubernetes:
  kubeconfig: %s
  allocator_lease: {duration: 2s, renew_deadline: 1500ms, retry_period: 300ms}
pools:
  - name: lan
    addresses: [%s]
listen: {http: "127.0.0.1:7475", socket: %q}
log: {level: debug}
%s`, n.name, lbdKubeconfig(l.root, l.kc, n.name, false, ""), l.pools, n.socket, bgpSection))
	if code, out, errOut := lbd(l.t, "reload", "-c", n.path); code != 0 {
		l.t.Fatalf("lbd reload on %s: exit %d\n%s%s", n.name, code, out, errOut)
	}
}

func nodeAddrs(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, map[string]string{"node-a": "192.0.2.1", "node-b": "192.0.2.2", "node-c": "192.0.2.3"}[n])
	}
	slices.Sort(out)
	return out
}

func (l *l2Lab) waitHops(tor *netlab.Host, ip string, d time.Duration, want ...string) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		got := tor.Nexthops(ip)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			l.t.Fatalf("router's next hops for %s: %v after %v, want %v", ip, got, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resetSession reloads n with the bgp section given, which must reset its
// BGP session, and waits for a new session and all of the router's next
// hops for ip again.
func (l *l2Lab) resetSession(n *labNode, section string, tor *netlab.Host, ip string, all []string) {
	l.t.Helper()
	t0 := time.Now()
	l.toBGPWith(n, section)
	waitFor(l.t, n.name+"'s session to come up again with the new settings", func() bool {
		p := n.d.status(l.t).BGP.Peers[0]
		return p.State == "established" && p.Since.After(t0)
	})
	l.waitHops(tor, ip, 10*time.Second, all...)
}

// newBGPLab is the L2 lab plus FRR as the router, every node peering with
// it (sessions up, no BGP advertisement yet).
func newBGPLab(t testing.TB) (*l2Lab, *netlab.Host, *netlab.FRR) {
	t.Helper()
	l := newL2Lab(t, bgpPeers(""))
	tor := l.lab.AddHost("tor", torAddr+"/24")
	tor.Sysctl("net.ipv4.fib_multipath_hash_policy=1")
	// The client reaches the pool through the router (a more specific
	// route than its on-link /24); the router forwards back onto the
	// segment without redirecting the client to the nodes.
	tor.Sysctl("net.ipv4.ip_forward=1")
	tor.Sysctl("net.ipv4.conf.all.send_redirects=0")
	tor.Sysctl("net.ipv4.conf.eth0.send_redirects=0")
	l.client.Must("ip", "route", "add", "192.0.2.192/27", "via", torAddr)
	f := netlab.StartFRR(t, tor, torConfig)
	f.WaitEstablished(10*time.Second, nodeAddrs("node-a", "node-b", "node-c")...)
	for _, n := range l.nodes {
		st := n.d.status(t)
		if st.BGP == nil || len(st.BGP.Peers) != 1 || st.BGP.Peers[0].State != "established" {
			t.Fatalf("%s's status: %+v", n.name, st.BGP)
		}
	}
	return l, tor, f
}

// BenchmarkBGPServiceToRoute: from creating a LoadBalancer Service in a
// BGP pool to the router's kernel having its route with three next hops
// (allocation, status write, three agents planning, UPDATEs, FRR, zebra).
func BenchmarkBGPServiceToRoute(b *testing.B) {
	l, tor, _ := newBGPLab(b)
	for _, n := range l.nodes {
		l.toBGP(n)
	}
	all := nodeAddrs("node-a", "node-b", "node-c")
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		l.createService(name)
		var ip string
		waitFor(b, name+"'s address", func() bool {
			ips := ingressIPs(b, l.kc.Client, "default", name)
			if len(ips) == 1 {
				ip = ips[0]
			}
			return ip != ""
		})
		l.waitHops(tor, ip, 10*time.Second, all...)
		total += time.Since(start)
		if err := l.kc.Client.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, ip+" withdrawn", func() bool { return len(tor.Nexthops(ip)) == 0 })
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/service-to-route")
}

// TestBGPLab: lbd nodes peering with FRR. The sessions come up with lbd
// (before any route); a Service in an L2 pool is switched to BGP by a
// configuration reload: it keeps its address, ARP answering stops and the
// router gets a route with all three nodes as next hops; a Service with
// externalTrafficPolicy: Local is routed only to its endpoint's node; a
// stopped node's next hop leaves within 1s.
func TestBGPLab(t *testing.T) {
	labParallel(t, 60*time.Second) // a lab of its own, beside the others (labsched_test.go)
	l, tor, f := newBGPLab(t)
	c := l.kc.Client
	all := nodeAddrs("node-a", "node-b", "node-c")

	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, c, "default", "web", web)
	o := l.owner(web)
	// The owner answers once its conflict probe (3 x 100ms) is over.
	waitFor(t, "the owner to answer ARP", func() bool { return slices.Contains(l.arpMACs(web, 1), o.host.MAC) })
	if got := l.arpMACs(web, 2); !slices.Equal(got, []string{o.host.MAC}) {
		t.Fatalf("ARP answers for %s in L2 mode: %v, want the owner's %s", web, got, o.host.MAC)
	}
	if hops := tor.Nexthops(web); len(hops) != 0 {
		t.Fatalf("a route for %s while the pool is L2: %v", web, hops)
	}

	t.Run("L2 to BGP by reload", func(t *testing.T) {
		l.t = t
		for _, n := range l.nodes {
			l.toBGP(n)
		}
		d := l.waitHops(tor, web, 10*time.Second, all...)
		t.Logf("route with three next hops %v after the last reload", d.Round(time.Millisecond))
		waitIPs(t, c, "default", "web", web)
		if got := l.arpMACs(web, 3); len(got) != 0 {
			macs := map[string]string{tor.MAC: "tor", l.client.MAC: "client"}
			for _, n := range l.nodes {
				macs[n.host.MAC] = n.name
				t.Logf("%s: %+v", n.name, n.d.status(t).Addresses)
			}
			out, _ := l.client.Run("arping", "-c", "2", "-W", "0.25", "-i", "eth0", web)
			t.Errorf("ARP still answered for %s after the switch to BGP: %v (%v)\n%s", web, got, macs, out)
		}
		for _, n := range l.nodes {
			if a := l.addressOf(n, web); a.Mode != "bgp" || !a.Announcing || a.Reason != "eligible" {
				t.Errorf("%s's decision for %s: %+v", n.name, web, a)
			}
		}
		if got, err := l.get(web, 2*time.Second); err != nil || !strings.HasPrefix(got, "node-") {
			t.Errorf("client GET %s through the router: %q %v", web, got, err)
		}
	})

	t.Run("Service create to route", func(t *testing.T) {
		l.t = t
		start := time.Now()
		l.createService("web2")
		waitIPs(t, c, "default", "web2", "192.0.2.201")
		l.waitHops(tor, "192.0.2.201", 10*time.Second, all...)
		t.Logf("Service create → route with three next hops at the router: %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("externalTrafficPolicy Local", func(t *testing.T) {
		l.t = t
		l.createService("local", etpLocal)
		waitIPs(t, c, "default", "local", "192.0.2.202")
		l.setEndpoint("local", "node-b")
		l.waitHops(tor, "192.0.2.202", 10*time.Second, nodeAddrs("node-b")...)
		l.setEndpoint("local", "node-c")
		l.waitHops(tor, "192.0.2.202", 10*time.Second, nodeAddrs("node-c")...)
	})

	// restart ends node-a's lbd with sig, starts it again and samples the
	// router's next hops for web until past the End-of-RIB and the
	// router's stale-path cleanup.
	restart := func(t *testing.T, sig syscall.Signal) (samples int, missing []string) {
		n := l.node("node-a")
		stop, _ := l.sampleHops(tor, web, all)
		l.kill(n, sig)
		start := time.Now()
		l.run(n)
		f.WaitEstablished(10*time.Second, nodeAddrs("node-a")...)
		t.Logf("lbd start → Established at the router: %v", time.Since(start).Round(time.Millisecond))
		waitFor(t, "node-a announcing web again", func() bool { return l.addressOf(n, web).Announcing })
		l.waitHops(tor, web, 10*time.Second, all...)
		time.Sleep(3 * time.Second)
		return stop()
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGUSR2} {
		t.Run(sig.String()+" and restart keeps the route", func(t *testing.T) {
			l.t = t
			samples, missing := restart(t, sig)
			if len(missing) > 0 {
				t.Fatalf("during the restart the router's next hops for %s were not %v in %d of %d samples: %v", web, all, len(missing), samples, missing[:min(5, len(missing))])
			}
			t.Logf("route with all three next hops in all %d samples", samples)
		})
	}
	// The negative control: with graceful restart off the same check sees
	// the next hop go, so it can fail.
	t.Run("without graceful restart a kill -9 drops the route", func(t *testing.T) {
		l.t = t
		n := l.node("node-a")
		reset := func(section string) { l.resetSession(n, section, tor, web, all) }
		reset(fmt.Sprintf(`bgp:
  asn: 64512
  peers:
    - {name: tor, address: %s, asn: 64501, connect_retry: 1s, graceful_restart: {enabled: false}}
%s`, torAddr, bgpAds))
		samples, missing := restart(t, syscall.SIGKILL)
		if len(missing) == 0 {
			t.Errorf("without graceful restart the router kept node-a's next hop in all %d samples: the restart check cannot fail", samples)
		}
		reset(bgpPeers(bgpAds))
	})

	t.Run("planned stop withdraws first", func(t *testing.T) {
		l.t = t
		n := l.node("node-c")
		l.kill(n, 15) // SIGTERM
		d := l.waitHops(tor, web, time.Second, nodeAddrs("node-a", "node-b")...)
		t.Logf("stopped node's next hop left in %v", d.Round(time.Millisecond))
		if !strings.Contains(n.d.logs(), "event=session_up") {
			t.Errorf("node-c's log has no session_up line")
		}
	})
}
