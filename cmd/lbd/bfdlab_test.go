package main

// BFD between lbd and a real router: the BGP lab with FRR's bfdd (and
// BIRD 2), the seed guide's 30/90 BGP timers, and 300ms x 3 BFD.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// torBFDConfig is torConfig with BFD for the peer group, profile "fast".
var torBFDConfig = strings.Replace(torConfig, " neighbor K8S timers 30 90\n",
	" neighbor K8S timers 30 90\n neighbor K8S bfd\n neighbor K8S bfd profile fast\n", 1)

// bfddConfig is FRR's bfdd: the profile the peer group uses.
func bfddConfig(tx, rx, mult int) string {
	return fmt.Sprintf(`log file %%DIR%%/bfdd.log
bfd
 profile fast
  transmit-interval %d
  receive-interval %d
  detect-multiplier %d
 exit
exit
`, tx, rx, mult)
}

// bfdPeers is the bgp section with BFD to the router.
func bfdPeers(bfd string) string {
	return fmt.Sprintf(`bgp:
  asn: 64512
  peers:
    - {name: tor, address: %s, asn: 64501, connect_retry: 1s, bfd: %s}
  advertisements:
    - {name: lan, pools: [lan]}
`, torAddr, bfd)
}

// newBFDLab is the BGP lab with BFD on both sides: the router's bfdd with
// bfdConf, every node's pool announced by BGP with bfd.
func newBFDLab(t testing.TB, bin, bfdConf string) (*l2Lab, *netlab.Host, *netlab.FRR) {
	t.Helper()
	l := newL2LabBin(t, bin, "", labAllocLease)
	tor := l.lab.AddHost("tor", torAddr+"/24")
	tor.Sysctl("net.ipv4.fib_multipath_hash_policy=1")
	tor.Sysctl("net.ipv4.ip_forward=1")
	tor.Sysctl("net.ipv4.conf.all.send_redirects=0")
	tor.Sysctl("net.ipv4.conf.eth0.send_redirects=0")
	l.client.Must("ip", "route", "add", "192.0.2.192/27", "via", torAddr)
	f := netlab.StartFRRWithBFD(t, tor, torBFDConfig, bfdConf)
	for _, n := range l.nodes {
		l.toBGPWith(n, bfdPeers("{}"))
	}
	f.WaitEstablished(20*time.Second, nodeAddrs("node-a", "node-b", "node-c")...)
	return l, tor, f
}

// bfdState is n's BFD session with the router as lbd status says it.
func (l *l2Lab) bfdState(n *labNode) string {
	st := n.d.status(l.t)
	if st.BGP == nil || len(st.BGP.Peers) != 1 || st.BGP.Peers[0].BFD == nil {
		return ""
	}
	return st.BGP.Peers[0].BFD.State
}

func waitBFDUp(t testing.TB, l *l2Lab, f *netlab.FRR, d time.Duration, nodes ...string) {
	t.Helper()
	addrs := nodeAddrs(nodes...)
	deadline := time.Now().Add(d)
	for {
		peers := f.BFDPeers()
		up := 0
		for _, a := range addrs {
			if peers[a].Status == "up" {
				up++
			}
		}
		lbdUp := 0
		for _, name := range nodes {
			if l.bfdState(l.node(name)) == "up" {
				lbdUp++
			}
		}
		if up == len(addrs) && lbdUp == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BFD up at the router for %d of %v, in lbd for %d: %+v", up, addrs, lbdUp, peers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// powerLoss takes n off the network as a power cut does: its switch port
// goes down and every process on it dies (lbd, the stand-in).
func (l *l2Lab) powerLoss(n *labNode) {
	l.lab.Unplug(n.host)
	l.kill(n, syscall.SIGKILL)
	n.standIn.Process.Kill()
}

// powerBack plugs n in again and starts its processes.
func (l *l2Lab) powerBack(n *labNode) {
	l.lab.Plug(n.host)
	n.standIn.Wait()
	l.startStandIn(n)
	l.run(n)
}

func TestBFDLab(t *testing.T) {
	timingLab(t, 75*time.Second)
	netlab.Need(t, "vtysh")
	l, tor, f := newBFDLab(t, timingBin(t), bfddConfig(300, 300, 3))
	const web = "192.0.2.200"
	all := nodeAddrs("node-a", "node-b", "node-c")
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)
	l.waitHops(tor, web, 10*time.Second, all...)

	t.Run("BFD up on both sides", func(t *testing.T) {
		l.t = t
		waitBFDUp(t, l, f, 10*time.Second, "node-a", "node-b", "node-c")
		p := f.BFDPeers()[nodeAddrs("node-a")[0]]
		if p.TransmitInterval != 300 || p.RemoteDetectMultiplier != 3 || p.RemoteTransmitInterval != 300 {
			t.Errorf("router's view of node-a's session: %+v", p)
		}
		st := l.node("node-a").d.status(t).BGP.Peers[0].BFD
		if st.TxInterval != "300ms" || st.DetectTime != "900ms" {
			t.Errorf("lbd's view: %+v", st)
		}
		if code, out, _ := lbd(t, "status", "--socket", l.node("node-a").socket); code != 0 || !strings.Contains(out, "bfd tor: up (router up), tx every 300ms, down after 900ms") {
			t.Errorf("lbd status:\n%s", out)
		}
	})

	t.Run("power loss leaves the router's ECMP set within a second or so", func(t *testing.T) {
		l.t = t
		n := l.node("node-b")
		l.powerLoss(n)
		d := l.waitHops(tor, web, 10*time.Second, nodeAddrs("node-a", "node-c")...)
		t.Logf("power loss → next hop gone from the router's FIB in %v (BGP hold time 90s)", d.Round(time.Millisecond))
		l.powerBack(n)
		l.waitHops(tor, web, 30*time.Second, all...)
		waitBFDUp(t, l, f, 10*time.Second, "node-b")
	})

	t.Run("SIGUSR2 restart hands BFD over and keeps the next hop", func(t *testing.T) {
		l.t = t
		n := l.node("node-a")
		gap, samples := l.bfdHandOver(t, tor, f, n, web, all)
		t.Logf("restart: BFD carried on (gap %v in the packets); all next hops in all %d samples", gap, samples)
	})

	// A crash closes the BGP connection at once (the kernel does), so the
	// router enters graceful restart and keeps the routes; the BFD down
	// that follows finds no session to end. The node still forwards.
	t.Run("kill -9 of lbd: graceful restart keeps the next hop", func(t *testing.T) {
		l.t = t
		n := l.node("node-b")
		stop, _ := l.sampleHops(tor, web, all)
		l.kill(n, syscall.SIGKILL)
		time.Sleep(2 * time.Second) // past BFD's detection time
		if p := f.BFDPeers()[nodeAddrs("node-b")[0]]; p.Status == "up" {
			t.Errorf("the router's BFD session with the killed node is still up: %+v", p)
		}
		l.run(n)
		waitBFDUp(t, l, f, 10*time.Second, "node-b")
		f.WaitEstablished(20*time.Second, nodeAddrs("node-b")...)
		samples, miss := stop()
		if len(miss) > 0 {
			t.Errorf("the router's next hops were not %v in %d of %d samples: %v", all, len(miss), samples, miss[:min(5, len(miss))])
		}
	})

	// The negative control: with graceful restart off, the same kill -9
	// takes the next hop away, and the sampler sees it.
	t.Run("without graceful restart a kill -9 drops the next hop", func(t *testing.T) {
		l.t = t
		n := l.node("node-b")
		reset := func(section string) { l.resetSession(n, section, tor, web, all) }
		reset(strings.Replace(bfdPeers("{}"), "bfd: {}", "bfd: {}, graceful_restart: {enabled: false}", 1))
		stop, _ := l.sampleHops(tor, web, all)
		l.kill(n, syscall.SIGKILL)
		l.run(n)
		f.WaitEstablished(20*time.Second, nodeAddrs("node-b")...)
		l.waitHops(tor, web, 10*time.Second, all...)
		samples, miss := stop()
		if len(miss) == 0 {
			t.Errorf("without graceful restart the router kept node-b's next hop in all %d samples: the check above cannot fail", samples)
		}
		reset(bfdPeers("{}"))
		waitBFDUp(t, l, f, 10*time.Second, "node-b")
	})

	t.Run("a reload that changes only the BFD timers does not reset BGP", func(t *testing.T) {
		l.t = t
		n := l.node("node-c")
		before := n.d.status(t).BGP.Peers[0]
		l.toBGPWith(n, bfdPeers("{transmit_interval: 200ms, receive_interval: 200ms, detect_multiplier: 5}"))
		waitFor(t, "the new timers at the router", func() bool {
			p := f.BFDPeers()[nodeAddrs("node-c")[0]]
			return p.RemoteDetectMultiplier == 5 && p.Status == "up"
		})
		after := n.d.status(t).BGP.Peers[0]
		if after.State != "established" || !after.Since.Equal(before.Since) {
			t.Errorf("BGP session: %s since %v, was since %v: it was reset", after.State, after.Since, before.Since)
		}
		if after.BFD.DetectTime != "900ms" { // the router's 3 x 300ms
			t.Errorf("lbd's detection time %s", after.BFD.DetectTime)
		}
	})

	t.Run("a router that takes one packet a second gets no more", func(t *testing.T) {
		l.t = t
		n := l.node("node-a")
		addr := nodeAddrs("node-a")[0]
		f.Configure("bfdd", "bfd", "profile fast", "receive-interval 1000")
		defer f.Configure("bfdd", "bfd", "profile fast", "receive-interval 300")
		waitFor(t, "lbd to slow down", func() bool {
			st := n.d.status(t).BGP.Peers[0].BFD
			return st != nil && st.TxInterval == "1s" && st.State == "up"
		})
		time.Sleep(time.Second)
		before := f.BFDPacketsIn(addr)
		time.Sleep(5 * time.Second)
		got := f.BFDPacketsIn(addr) - before
		// 0.75-1s apart with jitter: 5 to 7 in 5s (at 300ms: about 19).
		if got < 4 || got > 7 {
			t.Errorf("the router received %d packets from lbd in 5s, want 5-7 (one every 0.75-1s)", got)
		}
		t.Logf("router asks for 1s: lbd sent %d packets in 5s", got)
		if p := f.BFDPeers()[addr]; p.Status != "up" {
			t.Errorf("session went down while slowing: %+v", p)
		}
	})

	t.Run("SIGTERM withdraws within 1s", func(t *testing.T) {
		l.t = t
		n := l.node("node-c")
		l.kill(n, syscall.SIGTERM)
		d := l.waitHops(tor, web, time.Second, nodeAddrs("node-a", "node-b")...)
		t.Logf("planned stop: next hop gone in %v", d.Round(time.Millisecond))
	})
}

// sampleHops samples the router's next hops for ip every 10ms until stop
// is called, which returns the number of samples and those that were not
// want.
func (l *l2Lab) sampleHops(tor *netlab.Host, ip string, want []string) (stop func() (int, []string), _ []string) {
	var missing []string
	samples := 0
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			got := tor.Nexthops(ip)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				missing = append(missing, fmt.Sprint(got))
			}
			samples++
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() (int, []string) { close(quit); <-done; return samples, missing }, nil
}

// bfdHandOver restarts n's lbd with SIGUSR2 (as systemctl restart does)
// and checks that the router's BFD session carried on (same
// discriminator, up throughout) and that its next hops for ip stayed all
// of them in every sample. It returns the gap in n's BFD packets (logged
// by the new process) and the number of samples.
func (l *l2Lab) bfdHandOver(t testing.TB, tor *netlab.Host, f *netlab.FRR, n *labNode, ip string, all []string) (time.Duration, int) {
	addr := nodeAddrs(n.name)[0]
	before := f.BFDPeers()[addr]
	stop, _ := l.sampleHops(tor, ip, all)
	start := time.Now()
	l.kill(n, syscall.SIGUSR2)
	l.run(n)
	f.WaitEstablished(20*time.Second, addr)
	waitBFDUp(t, l, f, 10*time.Second, n.name)
	time.Sleep(2 * time.Second)
	samples, miss := stop()
	if len(miss) > 0 {
		t.Errorf("during the restart the router's next hops were not %v in %d of %d samples: %v", all, len(miss), samples, miss[:min(5, len(miss))])
	}
	after := f.BFDPeers()[addr]
	if after.RemoteID != before.RemoteID || after.Status != "up" || after.Uptime < before.Uptime+int(time.Since(start).Seconds())-1 {
		t.Errorf("the router's BFD session with %s did not carry on: before %+v, after %+v", n.name, before, after)
	}
	gap, err := time.ParseDuration(n.d.logLine(t, "BFD session resumed from the previous process")["gap"])
	if err != nil {
		t.Fatalf("the resumed session's gap: %v", err)
	}
	return gap, samples
}

// bfdBenchLab is the BFD lab at default timers (300ms x 3) with Service
// web at 192.0.2.200 routed through all three nodes, BFD up with each.
func bfdBenchLab(b *testing.B) (*l2Lab, *netlab.Host, *netlab.FRR, []string) {
	netlab.Need(b, "vtysh")
	l, tor, f := newBFDLab(b, labBin(b), bfddConfig(300, 300, 3))
	all := nodeAddrs("node-a", "node-b", "node-c")
	l.createService("web")
	waitIPs(b, l.kc.Client, "default", "web", "192.0.2.200")
	l.waitHops(tor, "192.0.2.200", 10*time.Second, all...)
	waitBFDUp(b, l, f, 10*time.Second, "node-a", "node-b", "node-c")
	return l, tor, f, all
}

// BenchmarkBFDHandOver: lbd restarted with SIGUSR2 (systemctl restart),
// default BFD timers (300ms x 3, so the router allows 900ms): the gap in
// lbd's BFD packets across the restart, p50 and max over b.N restarts.
// Every restart must keep the router's session up and every next hop
// (checked as in TestBFDLab).
func BenchmarkBFDHandOver(b *testing.B) {
	l, tor, f, all := bfdBenchLab(b)
	const web = "192.0.2.200"
	var gaps []time.Duration
	for i := 0; b.Loop(); i++ {
		gap, _ := l.bfdHandOver(b, tor, f, l.nodes[i%len(l.nodes)], web, all)
		gaps = append(gaps, gap)
	}
	b.ReportMetric(percentile(gaps, 0.5).Seconds(), "p50-s")
	b.ReportMetric(slices.Max(gaps).Seconds(), "max-s")
	b.ReportMetric(0, "ns/op")
	b.Logf("SIGUSR2 restart, gap in BFD packets, %d runs: %v", len(gaps), gaps)
}

// logLine returns the attributes of the first log line with message msg,
// failing the test if there is none.
func (d *daemonProc) logLine(t testing.TB, msg string) map[string]string {
	t.Helper()
	for line := range strings.Lines(d.logs()) {
		if !strings.Contains(line, "msg="+strconv.Quote(msg)) {
			continue
		}
		attrs := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				attrs[k] = v
			}
		}
		return attrs
	}
	t.Fatalf("no log line %q in:\n%s", msg, d.logs())
	return nil
}

// birdTorConfig is BIRD 2 as the router: the seed's 30/90 timers, dynamic
// neighbours, ECMP into the kernel, BFD 300ms x 3.
const birdTorConfig = `log "%DIR%/bird.log" all;
router id 192.0.2.254;
protocol device {}
protocol kernel {
  ipv4 { export all; };
  merge paths on;
}
protocol bfd {
  interface "eth0" { interval 300 ms; multiplier 3; };
}
protocol bgp k8s {
  local 192.0.2.254 as 64501;
  neighbor range 192.0.2.0/24 as 64512;
  dynamic name "k8s";
  passive on;
  hold time 90;
  keepalive time 30;
  graceful restart on;
  bfd on;
  ipv4 { import all; export none; };
}
`

// TestBFDLabBIRD: BIRD 2 as the router. BFD comes up with lbd, and a node's
// power loss takes its next hop out of the router's FIB in about a second.
func TestBFDLabBIRD(t *testing.T) {
	timingLab(t, 35*time.Second)
	netlab.Need(t, "birdc")
	l := newL2LabBin(t, timingBin(t), "", labAllocLease)
	tor := l.lab.AddHost("tor", torAddr+"/24")
	tor.Sysctl("net.ipv4.fib_multipath_hash_policy=1")
	tor.Sysctl("net.ipv4.ip_forward=1")
	b := netlab.StartBIRD(t, tor, birdTorConfig)
	for _, n := range l.nodes {
		l.toBGPWith(n, bfdPeers("{}"))
	}
	all := nodeAddrs("node-a", "node-b", "node-c")
	waitFor(t, "BGP and BFD up at BIRD", func() bool {
		est, bfd := b.Established(), b.BFDSessions()
		for _, a := range all {
			if !est[a] || bfd[a] != "Up" {
				return false
			}
		}
		return true
	})
	for _, n := range l.nodes {
		if s := l.bfdState(n); s != "up" {
			t.Errorf("%s's BFD session in lbd: %q", n.name, s)
		}
	}
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)
	l.waitHops(tor, web, 10*time.Second, all...)

	n := l.node("node-b")
	l.powerLoss(n)
	d := l.waitHops(tor, web, 5*time.Second, nodeAddrs("node-a", "node-c")...)
	t.Logf("BIRD 2: power loss → next hop gone from the router's FIB in %v (BGP hold time 90s)", d.Round(time.Millisecond))
	if s := b.BFDSessions()[nodeAddrs("node-b")[0]]; s == "Up" {
		t.Errorf("BIRD's BFD session with the dead node is %q", s)
	}
}

// TestBFDPortFlap: node-a's switch port goes down for 4s, ten times. After
// each, BGP and BFD come up again and stay up, 10s after each flap and 30s
// after the last: no flap loop (the failure of osrg/gobgp#3561, where a
// stale reset tears down the session again seconds after it came back),
// and exactly one BFD down per flap. BFD runs at 1 s x 3 here, not the
// 300 ms x 3 the timing labs time: what is tested is what follows a
// detection, and this lab runs under nice 19 beside the others, where a
// 0.9 s gap in a hold once brought BFD down with no flap (and as a fifth
// timing lab it crowded the peers labs it would run beside).
func TestBFDPortFlap(t *testing.T) {
	labParallel(t, 260*time.Second) // a lab of its own, beside the others (labsched_test.go)
	netlab.Need(t, "vtysh")
	l, _, f := newBFDLab(t, labBin(t), bfddConfig(1000, 1000, 3))
	n := l.node("node-a")
	addr := nodeAddrs("node-a")[0]
	l.toBGPWith(n, bfdPeers("{transmit_interval: 1s, receive_interval: 1s, detect_multiplier: 3}"))
	waitBFDUp(t, l, f, 10*time.Second, "node-a")
	const flaps = 10
	for i := range flaps {
		l.lab.Unplug(n.host)
		time.Sleep(4 * time.Second) // past the 3 s detection
		l.lab.Plug(n.host)
		start := time.Now()
		f.WaitEstablished(30*time.Second, addr)
		waitBFDUp(t, l, f, 10*time.Second, "node-a")
		back := time.Since(start)
		bgpSince := n.d.status(t).BGP.Peers[0].Since
		uptime := f.BFDPeers()[addr].Uptime
		hold := 10 * time.Second
		if i == flaps-1 {
			hold = 30 * time.Second
		}
		time.Sleep(hold)
		p := f.BFDPeers()[addr]
		st := n.d.status(t).BGP.Peers[0]
		if p.Status != "up" || p.Uptime < uptime+int(hold.Seconds())-1 || st.State != "established" || !st.Since.Equal(bgpSince) || st.BFD == nil || st.BFD.State != "up" {
			t.Fatalf("flap %d: did not stay up for %v: router's BFD %+v (uptime was %ds), lbd's BGP %s since %v (was %v), BFD %+v",
				i+1, hold, p, uptime, st.State, st.Since, bgpSince, st.BFD)
		}
		t.Logf("flap %d: BGP and BFD up %v after the port came back, and stayed up for %v", i+1, back.Round(time.Millisecond), hold)
	}
	if got := sumMetric(l.metricsIn(n), "lbd_bfd_session_down_total"); got != flaps {
		t.Errorf("lbd_bfd_session_down_total = %v after %d flaps, want %d", got, flaps, flaps)
	}
}

// sumMetric adds up every sample of the metric name in a text exposition.
func sumMetric(text, name string) float64 {
	var sum float64
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// BenchmarkBFDPowerLoss: a node loses power (switch port down, every
// process killed); the figure is the time until the router's kernel FIB
// no longer has it as a next hop for a Service address, with BFD 300ms x 3
// and BGP 30/90 (docs/bgp.md). Each run takes another node; p50 and the
// longest over b.N runs.
func BenchmarkBFDPowerLoss(b *testing.B) {
	l, tor, f, all := bfdBenchLab(b)
	const web = "192.0.2.200"
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		n := l.nodes[i%len(l.nodes)]
		var rest []string
		for _, o := range l.nodes {
			if o != n {
				rest = append(rest, o.name)
			}
		}
		l.powerLoss(n)
		took = append(took, l.waitHops(tor, web, 10*time.Second, nodeAddrs(rest...)...))
		l.powerBack(n)
		l.waitHops(tor, web, 30*time.Second, all...)
		waitBFDUp(b, l, f, 10*time.Second, n.name)
	}
	b.ReportMetric(percentile(took, 0.5).Seconds(), "p50-s")
	b.ReportMetric(slices.Max(took).Seconds(), "max-s")
	b.ReportMetric(0, "ns/op")
	b.Logf("power loss → next hop gone, %d runs: %v", len(took), took)
}
