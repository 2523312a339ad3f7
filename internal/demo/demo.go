// Package demo is the lab behind scripts/demo.sh: the whole product on
// one machine, in network namespaces with documentation addresses only.
// Three control-plane nodes (a kube-apiserver each, one shared etcd) hold
// the control-plane VIP; three workers announce Service addresses at L2
// and then by BGP to FRR as the top-of-rack router; a client on the
// segment and one behind the router measure what a user would feel.
//
// Lab.Run tells the seed guide's story step by step, writes every measured
// figure to results.json (which the demo's test checks) and leaves the lab
// up; Close takes it down.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Options say where things are.
type Options struct {
	Dir     string   // the lab's files: configs, kubeconfigs, logs/, results.json
	Bins    string   // kube-apiserver, etcd and kubectl (hack/kube-bins.sh)
	Lbd     string   // the lbd binary
	RBAC    string   // etc/lbd-rbac.yaml
	StandIn []string // argv of the stand-in for kube-proxy; the node's name is appended
	Out     io.Writer
}

// Results are the figures the story measured, in results.json.
type Results struct {
	SetupSeconds float64 `json:"setup_seconds"`
	VIP          struct {
		Holder    string  `json:"holder"`
		Seconds   float64 `json:"seconds"` // lbd started to VIP held
		KubectlOK bool    `json:"kubectl_ok"`
	} `json:"vip"`
	Web struct {
		Address  string  `json:"address"`
		Owner    string  `json:"owner"`
		ServedBy string  `json:"served_by"`
		Seconds  float64 `json:"seconds"` // kubectl apply to the first answer
	} `json:"web"`
	Ingress struct {
		Address    string   `json:"address"`
		Endpoint   string   `json:"endpoint"` // the node with the endpoint
		Owners     []string `json:"owners"`
		ServedBy   string   `json:"served_by"`
		OthersSaid []string `json:"others_said"` // the other workers' reasons
	} `json:"ingress"`
	L2Failover struct {
		From      string  `json:"from"`
		To        string  `json:"to"`
		GapMS     float64 `json:"gap_ms"`
		Failed    int     `json:"failed"`
		Requests  int     `json:"requests"`
		StayedPut bool    `json:"stayed_put"` // still on To after From came back
	} `json:"l2_failover"`
	BGP struct {
		Nexthops       []string `json:"nexthops"`
		RemoteServedBy string   `json:"remote_served_by"`
		Died           string   `json:"died"`
		DropMS         float64  `json:"drop_ms"` // power off to the router's route without it
		NexthopsAfter  []string `json:"nexthops_after"`
		Failed         int      `json:"failed"`
		Requests       int      `json:"requests"`
	} `json:"bgp"`
	CPFailover struct {
		From      string  `json:"from"`
		To        string  `json:"to"`
		GapMS     float64 `json:"gap_ms"`
		Failed    int     `json:"failed"`
		KubectlOK bool    `json:"kubectl_ok"`
	} `json:"cp_failover"`
	Drain struct {
		Address  string `json:"address"`
		Node     string `json:"node"`
		To       string `json:"to"`
		Failed   int    `json:"failed"` // could not connect, or timed out
		Reset    int    `json:"reset"`  // in flight at the MAC switch, reset
		Requests int    `json:"requests"`
	} `json:"drain"`
	TotalSeconds float64 `json:"total_seconds"`
}

// torConfig is FRR's bgpd: AS 64501, any node of the segment may peer
// (passive), BFD with profile fast, ECMP over up to 8 paths.
const torConfig = `frr defaults traditional
hostname tor
log file %DIR%/bgpd.log
router bgp 64501
 bgp router-id 192.0.2.254
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor K8S peer-group
 neighbor K8S remote-as 64512
 neighbor K8S passive
 neighbor K8S timers 30 90
 neighbor K8S bfd
 neighbor K8S bfd profile fast
 bgp listen range 192.0.2.0/24 peer-group K8S
 address-family ipv4 unicast
  neighbor K8S activate
  maximum-paths 8
 exit-address-family
`

const bfddConfig = `log file %DIR%/bfdd.log
bfd
 profile fast
  transmit-interval 300
  receive-interval 300
  detect-multiplier 3
 exit
exit
`

// Lab is a running demo lab.
type Lab struct {
	l *lab
}

// New prepares a lab in o.Dir; nothing runs yet.
func New(o Options) (*Lab, error) {
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(o.Dir, "logs", "lab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	r := newRunner(context.Background(), o.Dir, logf)
	return &Lab{l: &lab{r: r, o: o, out: o.Out, kubectl: filepath.Join(o.Bins, "kubectl"),
		admin: filepath.Join(o.Dir, "admin.kubeconfig")}}, nil
}

// Run builds the lab and tells the story. The lab stays up, also when
// the story fails (to look at); Close takes it down, and may be called
// while Run runs (a signal).
func (lb *Lab) Run() (err error) {
	l := lb.l
	l.start = time.Now()
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(fatal)
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("%s", f.msg)
		}
	}()
	fmt.Fprintf(l.out, "\033[1m== the lab\033[0m\n")
	l.build()
	l.controlPlaneVIP()
	l.webService()
	l.ingress()
	l.l2Failover()
	l.toBGP()
	l.cpFailover()
	l.drain()
	l.res.TotalSeconds = time.Since(l.start).Seconds()
	b, _ := json.MarshalIndent(l.res, "", "  ")
	if err := os.WriteFile(filepath.Join(l.o.Dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	l.summary()
	return nil
}

// Close stops every process and removes every namespace of the lab.
func (lb *Lab) Close() { lb.l.r.Close() }

// Explore prints how to look around the running lab.
func (lb *Lab) Explore(w io.Writer, lbdPath string) {
	l := lb.l
	d := l.o.Dir
	frrDir := "(FRR did not start)"
	if l.frr != nil {
		frrDir = l.frr.Dir
	}
	fmt.Fprintf(w, `
The lab stays up. Look around (as root):
  ip netns exec %[1]s-client curl http://%[2]s/
  ip netns exec %[1]s-client %[3]s --kubeconfig %[4]s/admin.kubeconfig get svc -A
  ip netns exec %[1]s-remote curl http://%[2]s/
  vtysh --vty_socket %[5]s -c 'show bgp summary' -c 'show bfd peers brief' -c 'show ip route %[2]s'
  %[6]s status -c %[4]s/w1.yaml         # any node: cp1-cp3, w1-w3
  less %[4]s/logs/w1.log                # lbd's log on that node
  ip netns exec %[1]s-w1 bash           # a shell on that node
Take it down: ./scripts/demo.sh down  (or make demo-down)
`, Prefix, l.res.Web.Address, l.kubectl, d, frrDir, lbdPath)
}

func (l *lab) controlPlaneVIP() {
	l.step(1, "control-plane VIP "+vip+":6443 (what kube-vip does)")
	t0 := time.Now()
	for _, n := range l.cps {
		l.startLbd(n)
	}
	h := l.soleVIPHolder("")
	l.res.VIP.Holder, l.res.VIP.Seconds = h.name, time.Since(t0).Seconds()
	l.say("lbd started on cp1-cp3; %s won the election and holds %s on eth0 (%.1fs)", h.name, vip, l.res.VIP.Seconds)
	_, err := l.kubectlShowUntil(30*time.Second, h.name, "-n", "kube-system", "get", "lease", "lbd-cp")
	l.res.VIP.KubectlOK = err == nil
}

func (l *lab) webService() {
	l.step(2, "a LoadBalancer Service gets an address, answered at L2 (what MetalLB does)")
	for _, n := range l.workers {
		l.startLbd(n)
	}
	l.say("lbd started on w1-w3 (their kubeconfigs point at the VIP)")
	t0 := time.Now()
	l.apply("web", `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
`)
	ip := l.waitAddress("default", "web")
	l.kubectlShow("get", "svc", "web")
	owner := l.soleOwner(ip, "")
	served := l.curl(l.client, ip)
	l.res.Web.Address, l.res.Web.Owner, l.res.Web.ServedBy = ip, owner.name, served
	l.res.Web.Seconds = time.Since(t0).Seconds()
	l.say("%s answers ARP for %s; %.1fs from kubectl apply to the first answer", owner.name, ip, l.res.Web.Seconds)
}

func (l *lab) ingress() {
	l.step(3, "a pinned address with externalTrafficPolicy: Local")
	// The endpoint runs on a worker other than web's owner, so the
	// failover below does not take it away.
	var ep string
	for _, n := range l.workers {
		if n.name != l.res.Web.Owner {
			ep = n.name
		}
	}
	ctx := context.Background()
	if _, err := l.kube.Client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ingress"}}, metav1.CreateOptions{}); err != nil {
		l.r.Fatal(err)
	}
	l.apply("ingress", `apiVersion: v1
kind: Service
metadata:
  name: ingress
  namespace: ingress
  annotations: {metallb.io/loadBalancerIPs: `+ingressAddr+`}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 80}]
`)
	// What the kubelet and the EndpointSlice controller would write: the
	// ingress controller's one pod runs on ep.
	if _, err := l.kube.Client.DiscoveryV1().EndpointSlices("ingress").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "ingress-1", Labels: map[string]string{discoveryv1.LabelServiceName: "ingress"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &ep}},
	}, metav1.CreateOptions{}); err != nil {
		l.r.Fatal(err)
	}
	l.say("its one endpoint (the ingress controller's pod) runs on %s", ep)
	ip := l.waitAddress("ingress", "ingress")
	owner := l.soleOwner(ip, "")
	l.res.Ingress.Address, l.res.Ingress.Endpoint = ip, ep
	l.res.Ingress.Owners = l.owners(ip)
	l.res.Ingress.ServedBy = l.curl(l.client, ip)
	l.say("%s got the pinned %s and %s answers for it:", "ingress/ingress", ip, owner.name)
	for _, n := range l.workers {
		a := l.addressOf(n, ip)
		l.say("  lbd status on %s: %s announcing=%v reason=%s", n.name, ip, a.Announcing, a.Reason)
		if n.name != ep {
			l.res.Ingress.OthersSaid = append(l.res.Ingress.OthersSaid, a.Reason)
		}
	}
}

func (l *lab) l2Failover() {
	l.step(4, "L2 failover: the owner of "+l.res.Web.Address+" loses power")
	ip := l.res.Web.Address
	from := l.node(l.res.Web.Owner)
	p := netlab.StartProbe(func() error { _, err := get(l.client, ip, 2*time.Second); return err })
	time.Sleep(time.Second)
	t0 := time.Now()
	l.powerOff(from)
	l.say("%s: cable dead, lbd killed (kill -9); the client sends a request every 20ms", from.name)
	to := l.soleOwner(ip, from.name)
	l.waitFor(20*time.Second, "an answer after the failover", func() bool { return p.OKAfter(time.Now().Add(-20 * time.Millisecond)) })
	time.Sleep(500 * time.Millisecond)
	p.Close()
	gap, failed, total := p.Outage(t0)
	l.res.L2Failover.From, l.res.L2Failover.To = from.name, to.name
	l.res.L2Failover.GapMS, l.res.L2Failover.Failed, l.res.L2Failover.Requests = ms(gap), failed, total
	l.say("%s took %s over: the client went %.2fs without an answer (%d of %d requests failed)",
		to.name, ip, gap.Seconds(), failed, total)
	l.logFailures("L2 failover", p, t0)
	l.powerOn(from)
	l.waitFor(20*time.Second, from.name+" to plan again", func() bool {
		return l.addressOf(from, ip).Reason != ""
	})
	time.Sleep(3 * time.Second)
	l.res.L2Failover.StayedPut = slices.Equal(l.owners(ip), []string{to.name})
	l.say("%s is back; %s stays on %s (no second move: owners stay put)", from.name, ip, strings.Join(l.owners(ip), ","))
}

func (l *lab) toBGP() {
	ip := l.res.Web.Address
	l.step(5, "the web pool moves to BGP: ECMP at the router, BFD on failure")
	for _, n := range l.workers {
		n.bgp = true
		l.writeConfig(n)
		out, err := runHere(l.o.Lbd, "reload", "-c", n.cfg)
		if err != nil {
			l.r.Fatalf("lbd reload on %s: %v\n%s", n.name, err, out)
		}
	}
	l.say("edited /etc/lbd.yaml on w1-w3 (pool web: from l2.advertisements to bgp, peer tor with bfd: {})")
	l.say("$ lbd reload -c %s/w1.yaml        # and on w2, w3", l.o.Dir)
	all := []string{}
	for _, n := range l.workers {
		all = append(all, n.ip)
	}
	l.waitHops(ip, all, 30*time.Second)
	l.res.BGP.Nexthops = l.tor.Nexthops(ip)
	l.say("the router's route to %s: %d next hops, %s", ip, len(all), strings.Join(sorted(l.res.BGP.Nexthops), ", "))
	l.res.BGP.RemoteServedBy = l.curl(l.remote, ip)
	// BFD comes up a second or two after BGP (one packet a second until
	// then); a node that dies before that is found by the hold timer.
	l.waitFor(20*time.Second, "BFD up between every worker and the router", func() bool {
		peers := l.frr.BFDPeers()
		for _, n := range l.workers {
			st := l.status(n)
			if st == nil || st.BGP == nil || len(st.BGP.Peers) != 1 || st.BGP.Peers[0].BFD == nil ||
				st.BGP.Peers[0].BFD.State != "up" || peers[n.ip].Status != "up" {
				return false
			}
		}
		return true
	})
	l.say("BFD is up between each worker and the router (300ms x 3)")

	// Lose the node that is not web's owner nor the ingress endpoint.
	die := l.workers[0]
	for _, n := range l.workers {
		if n.name != l.res.Ingress.Endpoint && n.name != l.res.L2Failover.To {
			die = n
		}
	}
	p := netlab.StartProbe(func() error { _, err := get(l.remote, ip, 2*time.Second); return err })
	time.Sleep(time.Second)
	t0 := time.Now()
	l.powerOff(die)
	want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == die.ip })
	l.waitHops(ip, want, 10*time.Second)
	drop := time.Since(t0)
	time.Sleep(time.Second)
	p.Close()
	_, failed, total := p.Outage(t0)
	l.res.BGP.Died, l.res.BGP.DropMS = die.name, ms(drop)
	l.res.BGP.NexthopsAfter = l.tor.Nexthops(ip)
	l.res.BGP.Failed, l.res.BGP.Requests = failed, total
	l.say("%s lost power; the router dropped its next hop after %.2fs (BFD), leaving %s", die.name, drop.Seconds(),
		strings.Join(sorted(l.res.BGP.NexthopsAfter), ", "))
	l.say("the remote client, a request every 20ms: %d of %d failed (the flows hashed to %s, until BFD)", failed, total, die.name)
	l.powerOn(die)
	l.waitHops(ip, all, 30*time.Second)
	l.say("%s is back: %d next hops again", die.name, len(all))
}

func (l *lab) cpFailover() {
	l.step(6, "control-plane failover: the VIP holder loses power")
	from := l.node(l.leaseHolder())
	addr := net.JoinHostPort(vip, "6443")
	p := netlab.StartProbe(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := l.client.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	time.Sleep(time.Second)
	t0 := time.Now()
	l.powerOff(from)
	l.say("%s: cable dead, lbd and kube-apiserver killed; the client connects to %s every 20ms", from.name, addr)
	to := l.soleVIPHolder(from.name)
	l.waitFor(20*time.Second, "a connection after the failover", func() bool { return p.OKAfter(time.Now().Add(-20 * time.Millisecond)) })
	time.Sleep(500 * time.Millisecond)
	p.Close()
	gap, failed, _ := p.Outage(t0)
	l.res.CPFailover.From, l.res.CPFailover.To = from.name, to.name
	l.res.CPFailover.GapMS, l.res.CPFailover.Failed = ms(gap), failed
	l.say("%s holds the VIP now: %.2fs without a connection", to.name, gap.Seconds())
	_, err := l.kubectlShowUntil(30*time.Second, to.name, "-n", "kube-system", "get", "lease", "lbd-cp")
	l.res.CPFailover.KubectlOK = err == nil
	l.powerOn(from)
	l.say("%s is back (API server and lbd); the VIP stays on %s", from.name, l.soleVIPHolder("").name)
}

func (l *lab) drain() {
	l.step(7, "kubectl drain hands an address over without a failed request")
	l.apply("shop", `apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: default
  annotations: {lbd.io/address-pool: lan}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
`)
	ip := l.waitAddress("default", "shop")
	from := l.soleOwner(ip, "")
	l.curl(l.client, ip)
	p := netlab.StartProbe(func() error { _, err := get(l.client, ip, 2*time.Second); return err })
	time.Sleep(time.Second)
	t0 := time.Now()
	if _, err := l.kubectlShow("drain", from.name, "--ignore-daemonsets", "--timeout=30s"); err != nil {
		l.r.Fatalf("kubectl drain %s: %v", from.name, err)
	}
	to := l.soleOwner(ip, from.name)
	// The old owner answers for l2.handover_grace (2s) while the new
	// one's gratuitous ARP goes out; probe past it.
	time.Sleep(3 * time.Second)
	p.Close()
	_, failed, total := p.Outage(t0)
	// A request in flight at the instant the client's neighbour entry
	// switches MAC has its TCP connection on the old node; its next
	// segment reaches the new one, which resets it. Any L2 move does that
	// (kube-proxy's conntrack lives on one node too); the hand-over's job
	// is that no new connection fails.
	reset := p.Count(t0, func(err error) bool { return errors.Is(err, syscall.ECONNRESET) })
	l.res.Drain.Address, l.res.Drain.Node, l.res.Drain.To = ip, from.name, to.name
	l.res.Drain.Failed, l.res.Drain.Reset, l.res.Drain.Requests = failed-reset, reset, total
	l.say("%s (shop) moved from %s to %s: %d of %d requests failed", ip, from.name, to.name, failed-reset, total)
	if reset > 0 {
		l.say("(and %d in flight at the instant the client switched to %s's MAC was reset: its connection lived on %s)",
			reset, to.name, from.name)
	}
	l.logFailures("drain", p, t0)
	if _, err := l.kubectlOut("uncordon", from.name); err != nil {
		l.r.Fatalf("kubectl uncordon %s: %v", from.name, err)
	}
}

func (l *lab) summary() {
	fmt.Fprintf(l.out, "\n\033[1m== 8. what was measured\033[0m  [%s]\n", l.since())
	rows := [][2]string{
		{"lab up (namespaces, etcd, 3 API servers, FRR)", fmt.Sprintf("%.1f s", l.res.SetupSeconds)},
		{"control-plane VIP held after lbd starts", fmt.Sprintf("%.1f s (%s)", l.res.VIP.Seconds, l.res.VIP.Holder)},
		{"Service created to first HTTP answer", fmt.Sprintf("%.1f s (%s)", l.res.Web.Seconds, l.res.Web.Address)},
		{"externalTrafficPolicy: Local answered by", fmt.Sprintf("%s (endpoint on %s)", strings.Join(l.res.Ingress.Owners, ","), l.res.Ingress.Endpoint)},
		{"L2 failover, owner loses power", fmt.Sprintf("%.2f s, %d failed requests", l.res.L2Failover.GapMS/1000, l.res.L2Failover.Failed)},
		{"address moved back when the owner returned", map[bool]string{true: "no", false: "YES"}[l.res.L2Failover.StayedPut]},
		{"BGP: router drops a dead node's next hop", fmt.Sprintf("%.2f s (BFD)", l.res.BGP.DropMS/1000)},
		{"control-plane failover, holder loses power", fmt.Sprintf("%.2f s without a connection", l.res.CPFailover.GapMS/1000)},
		{"kubectl drain of an owner", fmt.Sprintf("%d of %d requests failed (%d reset in flight)", l.res.Drain.Failed, l.res.Drain.Requests, l.res.Drain.Reset)},
		{"whole story", fmt.Sprintf("%.0f s", time.Since(l.start).Seconds())},
	}
	for _, r := range rows {
		fmt.Fprintf(l.out, "   %-48s %s\n", r[0], r[1])
	}
	fmt.Fprintf(l.out, "   (every figure is in %s)\n", filepath.Join(l.o.Dir, "results.json"))
}

// logFailures writes the probe's failed tries to the lab's log, and says
// when a step that should lose nothing lost something.
func (l *lab) logFailures(what string, p *netlab.Prober, since time.Time) {
	fs := p.Failures(since)
	if len(fs) > 0 {
		l.r.Logf("%s: failed request times are from %s", what, since.Format("15:04:05.000"))
	}
	for _, f := range fs {
		l.r.Logf("%s: failed request %s", what, f)
	}
}

// apply writes a manifest and applies it with kubectl, as the user would.
func (l *lab) apply(name, manifest string) {
	path := filepath.Join(l.o.Dir, name+".svc.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		l.r.Fatal(err)
	}
	out, err := l.kubectlShow("apply", "-f", path)
	if err != nil {
		l.r.Fatalf("kubectl apply -f %s: %v\n%s", path, err, out)
	}
}

// waitAddress waits for the Service's address in its status.
func (l *lab) waitAddress(ns, name string) string {
	var ip string
	l.waitFor(20*time.Second, "an address for "+ns+"/"+name, func() bool {
		s, err := l.kube.Client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false
		}
		ip = s.Status.LoadBalancer.Ingress[0].IP
		return true
	})
	return ip
}

// waitHops waits until the router's kernel route to ip has exactly want
// as next hops.
func (l *lab) waitHops(ip string, want []string, d time.Duration) {
	l.waitFor(d, "the router's next hops for "+ip+" to be "+strings.Join(want, ", "), func() bool {
		return slices.Equal(sorted(l.tor.Nexthops(ip)), sorted(want))
	})
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runHere runs a program in the demo's own namespace (the host's).
func runHere(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
