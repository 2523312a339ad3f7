package main

// L2 announcement on a real segment (internal/netlab): a client, an API
// server and three nodes on one switch, each node running `lbd run` and a
// stand-in for kube-proxy (the pool routed as local, and an HTTP server
// that answers its node's name).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/netlab"
	"github.com/lbdproject/lbd/internal/status"
)

// standInEnv makes the test binary a lab node's stand-in for kube-proxy:
// an HTTP server on port 80 of every local address that answers the node
// name it is given.
const standInEnv = "LBD_TEST_STANDIN_NODE"

func serveStandIn(node string) {
	ln, err := net.Listen("tcp", "[::]:80")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, node)
	}))
}

const (
	labPoolV4 = "192.0.2.200-192.0.2.220"
	labPoolV6 = "2001:db8::200-2001:db8::220"
)

// l2Lab is the shared lab.
type l2Lab struct {
	t      testing.TB // the running (sub)test
	root   testing.TB // the test that owns the processes
	lab    *netlab.Lab
	kc     *kubetest.Cluster
	client *netlab.Host
	nodes  []*labNode
	dir    string
	extra  string // more configuration for every node; {{node}} is its name
	pools  string // the pool's addresses
	// allocLease is kubernetes.allocator_lease ("" for the default).
	allocLease string
	// procs is every lbd the lab started, the stopped ones too.
	procs []*daemonProc
	// bin is the lbd the lab runs: labBin's, or timingBin for the labs
	// that time the detectors (timingLab).
	bin string
}

// labAllocLease fails the allocator over quickly, for the lab's tests.
const labAllocLease = "{duration: 2s, renew_deadline: 1500ms, retry_period: 300ms}"

type labNode struct {
	name    string
	host    *netlab.Host
	d       *daemonProc
	standIn *exec.Cmd
	path    string
	socket  string
	peerIP  string // its InternalIP, on the peers' network
}

// newL2Lab builds the lab; extra is more configuration for every node,
// pools replaces the pool's addresses (default labPoolV4 and labPoolV6).
func newL2Lab(t testing.TB, extra string, pools ...string) *l2Lab {
	t.Helper()
	return newL2LabLease(t, extra, labAllocLease, pools...)
}

// newL2LabLease is newL2Lab with allocLease as kubernetes.allocator_lease
// ("" for the default).
func newL2LabLease(t testing.TB, extra, allocLease string, pools ...string) *l2Lab {
	t.Helper()
	return newL2LabBin(t, labBin(t), extra, allocLease, pools...)
}

// newL2LabBin is newL2LabLease running bin as every node's lbd.
func newL2LabBin(t testing.TB, bin, extra, allocLease string, pools ...string) *l2Lab {
	t.Helper()
	netlab.Need(t, "arping", "ndisc6", "ping", "tcpdump")
	lab := netlab.New(t)
	if len(pools) == 0 {
		pools = []string{labPoolV4, labPoolV6}
	}
	l := &l2Lab{t: t, root: t, lab: lab, dir: t.TempDir(), extra: extra, pools: strings.Join(pools, ", "), allocLease: allocLease, bin: bin}
	l.client = lab.AddHost("client", "192.0.2.50/24", "2001:db8::50/64")
	api := lab.AddHost("api", "192.0.2.100/24")
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		h := lab.AddHost(name, fmt.Sprintf("192.0.2.%d/24", i+1), fmt.Sprintf("2001:db8::%d/64", i+1))
		l.nodes = append(l.nodes, &labNode{name: name, host: h,
			path: filepath.Join(l.dir, name+".yaml"), socket: filepath.Join(l.dir, name+".sock")})
	}
	l.kc = kubetest.StartIn(t, api, "192.0.2.100", kubetest.WithServiceClusterIPRange("10.96.0.0/12,fd00::/108"))
	ctx := context.Background()
	for i, n := range l.nodes {
		// The Node's InternalIP is on a network of its own, which the
		// peers (peerslab_test.go) use and a test can cut apart from the
		// segment the clients and the API server are on.
		n.peerIP = fmt.Sprintf("198.51.100.%d", i+1)
		n.host.Must("ip", "addr", "add", n.peerIP+"/24", "dev", "eth0")
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{"kubernetes.io/hostname": n.name}}}
		created, err := l.kc.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.peerIP}}
		if _, err := l.kc.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The stand-in for kube-proxy: the pool is local, the kernel
		// does not answer ARP/NDP for it (arp_ignore=1, no address),
		// and an HTTP server says which node served.
		n.host.Must("ip", "route", "add", "local", "192.0.2.192/27", "dev", "lo")
		n.host.Must("ip", "-6", "route", "add", "local", "2001:db8::200/123", "dev", "lo")
		l.startStandIn(n)
		l.start(n)
	}
	waitFor(t, "every node alive and planning", func() bool {
		for _, n := range l.nodes {
			if !strings.HasPrefix(n.d.status(t).Agent, "announcing") {
				return false
			}
		}
		return true
	})
	return l
}

// startStandIn runs n's HTTP server, which answers n's name.
func (l *l2Lab) startStandIn(n *labNode) {
	t := l.root
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.host.Command(self)
	cmd.Env = append(os.Environ(), standInEnv+"="+n.name)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil {
		t.Fatalf("stand-in on %s: %v", n.name, err)
	}
	n.standIn = cmd
}

// start runs (or runs again) lbd on n.
func (l *l2Lab) start(n *labNode) {
	lease := ""
	if l.allocLease != "" {
		lease = "\n  allocator_lease: " + l.allocLease
	}
	write(l.root, n.path, fmt.Sprintf(`version: 1
node: {name: %s}
kubernetes:
  kubeconfig: %s%s
pools:
  - name: lan
    addresses: [%s]
l2:
  advertisements:
    - {name: lan, pools: [lan], interfaces: [eth0]}
listen: {http: "127.0.0.1:7475", socket: %q}
log: {level: debug}
%s`, n.name, lbdKubeconfig(l.root, l.kc, n.name, false, ""), lease, l.pools, n.socket, strings.ReplaceAll(l.extra, "{{node}}", n.name)))
	l.run(n)
}

// run starts the lab's lbd on n with n's configuration as it is.
func (l *l2Lab) run(n *labNode) {
	n.d = startDaemonCmd(l.root, n.host.Command(l.bin, "run", "-c", n.path), n.path, n.socket)
	l.procs = append(l.procs, n.d)
}

// takeovers counts the moves of ip: the takeovers (as its owner) in the
// logs of every lbd the lab started, the stopped ones' too.
func (l *l2Lab) takeovers(ip string) int {
	n := 0
	for _, d := range l.procs {
		for line := range strings.SplitSeq(d.logs(), "\n") {
			if strings.Contains(line, "event=takeover") && strings.Contains(line, "ip="+ip+" ") && strings.Contains(line, "reason=owner") {
				n++
			}
		}
	}
	return n
}

// rollStep is one restart of a rolling restart: the node, the owner of
// the address just before, and the address's moves from the stop until
// the node was back and a second more.
type rollStep struct {
	node, owner *labNode
	moves       int
}

// rollingRestart restarts every node's lbd in turn, as `systemctl
// restart` does (SIGTERM, start), waits each time for back(n) and a
// second more (a returning node that took the address back would have by
// then), and fails the test when a restart moved ip other than once if it
// stopped its owner, never otherwise (counted in the lbd logs). It calls
// each (when not nil) after every restart, and returns how many restarts
// stopped the owner and the moves in all, between the restarts too.
func (l *l2Lab) rollingRestart(ip string, back func(n *labNode) bool, each func(s rollStep)) (ownerRestarts, moves int) {
	start := l.takeovers(ip)
	for _, n := range l.nodes {
		s := rollStep{node: n, owner: l.owner(ip)}
		before := l.takeovers(ip)
		l.kill(n, syscall.SIGTERM)
		l.start(n)
		waitFor(l.t, n.name+" back after its restart", func() bool { return back(n) })
		time.Sleep(time.Second)
		s.moves = l.takeovers(ip) - before
		want := 0
		if n == s.owner {
			want = 1
		}
		ownerRestarts += want
		if s.moves != want {
			l.t.Errorf("restarting %s (the owner was %s): the address moved %d times, want %d", n.name, s.owner.name, s.moves, want)
		}
		if each != nil {
			each(s)
		}
	}
	return ownerRestarts, l.takeovers(ip) - start
}

// kill ends n's lbd with SIGKILL (or sig).
func (l *l2Lab) kill(n *labNode, sig syscall.Signal) {
	n.d.cmd.Process.Signal(sig)
	<-n.d.done
}

func (l *l2Lab) node(name string) *labNode {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	l.t.Fatalf("no node %s", name)
	return nil
}

func (l *l2Lab) running() []*labNode {
	var out []*labNode
	for _, n := range l.nodes {
		select {
		case <-n.d.done:
		default:
			out = append(out, n)
		}
	}
	return out
}

// announcers returns the running nodes that say they announce ip.
func (l *l2Lab) announcers(ip string) []string {
	var out []string
	for _, n := range l.running() {
		for _, a := range n.d.status(l.t).Addresses {
			if a.IP == ip && a.Announcing {
				out = append(out, n.name)
			}
		}
	}
	return out
}

// cutAPI cuts n from the API server (a blackhole route), or heals it.
func (l *l2Lab) cutAPI(n *labNode, on bool) {
	n.host.Must("ip", "route", routeOp(on), "blackhole", "192.0.2.100/32")
}

// routeOp is the ip route command that cuts (add) or heals (del).
func routeOp(cut bool) string {
	if cut {
		return "add"
	}
	return "del"
}

// owner waits until exactly one running node announces ip as its owner,
// and returns it.
func (l *l2Lab) owner(ip string) *labNode {
	l.t.Helper()
	var who []string
	waitFor(l.t, "one owner of "+ip, func() bool {
		who = l.announcers(ip)
		if len(who) != 1 {
			return false
		}
		for _, a := range l.node(who[0]).d.status(l.t).Addresses {
			if a.IP == ip && a.Reason == "owner" {
				return true
			}
		}
		return false
	})
	return l.node(who[0])
}

// settledOwner is owner once every node names it as the owner of ip,
// twice a second apart: no hand-over is under way (on a loaded machine
// the first placement can still be moving when owner first returns).
func (l *l2Lab) settledOwner(ip string) *labNode {
	l.t.Helper()
	var o *labNode
	agreed := 0
	waitFor(l.t, "every node to agree on the owner of "+ip, func() bool {
		prev := o
		o = l.owner(ip)
		for _, n := range l.nodes {
			if l.addressOf(n, ip).Owner != o.name {
				agreed = 0
				return false
			}
		}
		if o != prev {
			agreed = 0
		}
		agreed++
		if agreed < 2 {
			time.Sleep(time.Second)
			return false
		}
		return true
	})
	return o
}

// newOwner waits until a running node other than old owns ip, and
// returns it.
func (l *l2Lab) newOwner(ip string, old *labNode) *labNode {
	l.t.Helper()
	var n *labNode
	waitFor(l.t, "another node to own "+ip, func() bool {
		for _, x := range l.running() {
			if x != old && l.addressOf(x, ip).Reason == "owner" {
				n = x
				return true
			}
		}
		return false
	})
	return n
}

// addressOf returns n's decision for ip.
func (l *l2Lab) addressOf(n *labNode, ip string) status.Address {
	for _, a := range n.d.status(l.t).Addresses {
		if a.IP == ip {
			return a
		}
	}
	return status.Address{}
}

// arpMACs returns the distinct MACs that answer the client's ARP requests
// for ip (count requests, 0.25s apart).
func (l *l2Lab) arpMACs(ip string, count int) []string {
	out, _ := l.client.Run("arping", "-r", "-c", fmt.Sprint(count), "-W", "0.25", "-i", "eth0", ip)
	return distinct(out)
}

// resolve6 makes the client's kernel resolve ip afresh (Neighbor
// Solicitations to its solicited-node group) and returns the MAC it
// learnt.
func (l *l2Lab) resolve6(ip string) string {
	l.client.Run("ip", "neigh", "del", ip, "dev", "eth0")
	l.client.Run("ping", "-6", "-c", "1", "-W", "1", ip)
	return l.neighMAC(ip)
}

// ndiscMACs asks for ip with ndisc6 from the client, waiting for every
// answer (no -1), and returns the distinct MACs that answered. ndisc6
// takes only advertisements whose source is ip itself; an answer it
// reports from another source fails the test.
func (l *l2Lab) ndiscMACs(ip string) []string {
	out, _ := l.client.Run("ndisc6", "-m", "-n", "-r", "2", "-w", "500", ip, "eth0")
	for _, m := range ndiscFromRE.FindAllStringSubmatch(out, -1) {
		if m[1] != ip {
			l.t.Errorf("ndisc6 %s: answer from %s, want from the target itself\n%s", ip, m[1], out)
		}
	}
	return distinct(out)
}

// ndiscFromRE finds the sources of the answers in ndisc6's verbose output.
var ndiscFromRE = regexp.MustCompile(`(?m)^ from (\S+)$`)

func distinct(out string) []string {
	var macs []string
	for f := range strings.FieldsSeq(strings.ToLower(out)) {
		if _, err := net.ParseMAC(f); err == nil && !slices.Contains(macs, f) {
			macs = append(macs, f)
		}
	}
	slices.Sort(macs)
	return macs
}

// neighMAC returns the client's neighbour entry for ip.
func (l *l2Lab) neighMAC(ip string) string {
	out, _ := l.client.Run("ip", "-j", "neigh", "show", ip)
	var ns []struct {
		LLAddr string `json:"lladdr"`
	}
	if json.Unmarshal([]byte(out), &ns) != nil || len(ns) == 0 {
		return ""
	}
	return strings.ToLower(ns[0].LLAddr)
}

// get makes one HTTP request from the client to ip and returns the node
// that answered.
func (l *l2Lab) get(ip string, timeout time.Duration) (string, error) {
	return l.client.Get(ip, timeout)
}

// traffic sends a request to ip every 20ms until stop is called, which
// returns how many failed (no connection, or no answer in time), the
// requests reset in flight, and which nodes answered. A reset is what a
// request in flight at the instant the client switches MAC gets: its
// connection lived on the old node, and the new one resets it. Any L2
// move does that to the requests open at that instant (docs/l2.md,
// "Hand-over"); a broken hand-over fails requests instead.
//
// A request that failed while the test process itself did not run for
// half its timeout or more (the ticks that send the requests stopped
// arriving: a machine loaded with other tests' kube-apiservers) is not
// counted: it says nothing of the network. It is logged with the others,
// each with its error and time.
func (l *l2Lab) traffic(ip string) (stop func() (failed int, reset resets, served map[string]int)) {
	const timeout = 2 * time.Second
	t := l.t
	begin := time.Now()
	var mu sync.Mutex
	served := map[string]int{}
	var reset [][2]time.Time // each reset request's start and end
	var fails []trafficFailure
	var stalls [][2]time.Time // the ticks stopped: gaps of over 200 ms
	// What the client sent and got, to show how a request failed.
	capture := l.client.Capture(t, "arp or tcp port 80")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			now := time.Now()
			if now.Sub(last) > 200*time.Millisecond {
				mu.Lock()
				stalls = append(stalls, [2]time.Time{last, now})
				mu.Unlock()
			}
			last = now
			wg.Go(func() {
				start := time.Now()
				node, port, err := l.client.GetConn(ip, timeout)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, syscall.ECONNRESET):
					reset = append(reset, [2]time.Time{start, time.Now()})
				case err != nil:
					fails = append(fails, trafficFailure{start: start, end: time.Now(), port: port, err: err})
				default:
					served[node]++
				}
			})
		}
	})
	return func() (int, resets, map[string]int) {
		close(done)
		wg.Wait()
		capture.Stop()
		failed := 0
		for _, f := range fails {
			stalled := netlab.Stalled(stalls, f.start, f.end)
			excused := stalled >= timeout/2
			if !excused {
				failed++
			}
			t.Logf("request to %s at %.1fs failed after %v: %v (the test process stalled %v of it%s)", ip,
				f.start.Sub(begin).Seconds(), f.end.Sub(f.start).Round(time.Millisecond), f.err,
				stalled.Round(time.Millisecond), map[bool]string{true: ": not counted", false: ""}[excused])
		}
		if len(fails) > 0 {
			t.Logf("the client's packets around the failed requests:\n%s", l.failedPackets(capture, ip, fails))
		}
		return failed, resetsOf(reset), served
	}
}

type trafficFailure struct {
	start, end time.Time
	port       int // the client's TCP port, 0 if no connection was made
	err        error
}

// failedPackets shows what the client's capture holds of the failed
// requests to ip: each one's connection (by its port; a request never
// connected, by the first connection begun while it waited), and every ARP
// packet from half a second before the first to the end of the last.
func (l *l2Lab) failedPackets(c *netlab.Capture, ip string, fails []trafficFailure) string {
	var client string // the client's address of ip's family
	for _, a := range l.client.Addrs {
		if addr, _, _ := strings.Cut(a, "/"); strings.Contains(addr, ":") == strings.Contains(ip, ":") {
			client = addr
			break
		}
	}
	conns := netlab.TCPConns(c.Packets("tcp port 80"), client)
	var b strings.Builder
	b.WriteString("  MACs:")
	for _, n := range l.nodes {
		fmt.Fprintf(&b, " %s %s,", n.name, n.host.MAC)
	}
	fmt.Fprintf(&b, " client %s\n", l.client.MAC)
	from, to := fails[0].start, fails[0].end
	for i, f := range fails {
		if f.start.Before(from) {
			from = f.start
		}
		if f.end.After(to) {
			to = f.end
		}
		if i == 10 {
			fmt.Fprintf(&b, "  (%d more failed requests not shown)\n", len(fails)-i)
		}
		if i >= 10 {
			continue
		}
		if f.port != 0 {
			fmt.Fprintf(&b, "  the request at %s (port %d):\n%s", f.start.Format("15:04:05.000000"), f.port, netlab.Format(conns[f.port]))
			continue
		}
		port := netlab.BegunIn(conns, f.start, f.end)
		if port == 0 {
			fmt.Fprintf(&b, "  the request at %s sent no SYN (the client had no MAC for %s?)\n", f.start.Format("15:04:05.000000"), ip)
			continue
		}
		fmt.Fprintf(&b, "  the request at %s was never connected; the connection begun next (port %d):\n%s", f.start.Format("15:04:05.000000"), port, netlab.Format(conns[port]))
	}
	var arp []netlab.Packet
	for _, p := range c.Packets("arp") {
		if !p.At.Before(from.Add(-500*time.Millisecond)) && !p.At.After(to) {
			arp = append(arp, p)
		}
	}
	fmt.Fprintf(&b, "  ARP from %s to %s:\n%s", from.Add(-500*time.Millisecond).Format("15:04:05.000000"), to.Format("15:04:05.000000"), netlab.Format(arp))
	return b.String()
}

// resets are the requests of traffic reset in flight.
type resets struct {
	n int
	// instants is the fewest instants at which every one of them was in
	// flight. The requests one L2 move resets were all open at the
	// instant the client switched MAC, so a move accounts for one
	// instant however many were in flight (more on a loaded machine,
	// where each takes longer); resets spread over time are not a move's.
	instants int
}

func (r resets) String() string {
	return fmt.Sprintf("%d reset in flight (at %d instants)", r.n, r.instants)
}

// resetsOf counts the intervals (start, end) and the fewest instants
// that stab them all: the earliest end first, then every interval open at
// it is covered.
func resetsOf(in [][2]time.Time) resets {
	iv := slices.Clone(in)
	slices.SortFunc(iv, func(a, b [2]time.Time) int { return a[1].Compare(b[1]) })
	r := resets{n: len(iv)}
	var at time.Time
	for _, x := range iv {
		if r.instants == 0 || x[0].After(at) {
			r.instants++
			at = x[1]
		}
	}
	return r
}

func (l *l2Lab) createService(name string, mods ...func(*corev1.Service)) {
	l.t.Helper()
	create(l.t, l.kc.Client, lbSvc("default", name, mods...))
}

func dualStack(s *corev1.Service) {
	p := corev1.IPFamilyPolicyRequireDualStack
	s.Spec.IPFamilyPolicy = &p
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

func etpLocal(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

// setEndpoint makes the Service's one endpoint run on node.
func (l *l2Lab) setEndpoint(svc, node string) {
	l.t.Helper()
	ctx := context.Background()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &node}},
	}
	slices := l.kc.Client.DiscoveryV1().EndpointSlices("default")
	cur, err := slices.Get(ctx, es.Name, metav1.GetOptions{})
	if err == nil {
		cur.Endpoints = es.Endpoints
		_, err = slices.Update(ctx, cur, metav1.UpdateOptions{})
	} else {
		_, err = slices.Create(ctx, es, metav1.CreateOptions{})
	}
	if err != nil {
		l.t.Fatal(err)
	}
}

func (l *l2Lab) cordon(node string, on bool) {
	l.t.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%v}}`, on)
	if _, err := l.kc.Client.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		l.t.Fatal(err)
	}
}

// scrapeTimeout is Prometheus's default scrape timeout: a race-built lbd
// under nice 19 on a loaded machine once took more than 2 s to answer
// /metrics. How fast it answers is not what these tests check.
const scrapeTimeout = 10 * time.Second

// readyz returns n's /readyz status code and body.
func (l *l2Lab) readyz(n *labNode) (int, string) {
	c := &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{DialContext: n.host.DialContext}}
	resp, err := c.Get("http://127.0.0.1:7475/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricsIn scrapes n's metrics from inside its namespace.
func (l *l2Lab) metricsIn(n *labNode) string {
	c := &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{DialContext: n.host.DialContext}}
	resp, err := c.Get("http://127.0.0.1:7475/metrics")
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestL2Lab(t *testing.T) {
	labParallel(t, 180*time.Second) // a lab of its own, beside the others (labsched_test.go)
	l := newL2Lab(t, "")
	c := l.kc.Client
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, c, "default", "web", web)

	t.Run("owner answers ARP and serves", func(t *testing.T) {
		l.t = t
		o := l.owner(web)
		// The owner answers once its conflict probe (3 x 100ms) is over.
		waitFor(t, "the owner to answer ARP", func() bool { return slices.Contains(l.arpMACs(web, 1), o.host.MAC) })
		if got := l.arpMACs(web, 3); !slices.Equal(got, []string{o.host.MAC}) {
			t.Errorf("ARP answers for %s from %v, want only the owner %s (%s)", web, got, o.name, o.host.MAC)
		}
		if node, err := l.get(web, 2*time.Second); err != nil || node != o.name {
			t.Errorf("HTTP to %s: %q %v, want 200 from %s", web, node, err, o.name)
		}
		if got := l.neighMAC(web); got != o.host.MAC {
			t.Errorf("client's neighbour entry %s, want %s", got, o.host.MAC)
		}
		for _, n := range l.nodes {
			a := l.addressOf(n, web)
			want := "other_owner"
			if n == o {
				want = "owner"
			}
			if a.Reason != want || a.Owner != o.name || a.Service != "default/web" || a.Mode != "l2" {
				t.Errorf("%s's decision for %s: %+v, want reason %s, owner %s", n.name, web, a, want, o.name)
			}
		}
		if m := l.metricsIn(o); !strings.Contains(m, `lbd_announced_addresses{mode="l2"} 1`) || !strings.Contains(m, `lbd_address_decisions{reason="owner"} 1`) {
			t.Errorf("owner's metrics:\n%s", grepLines(m, "lbd_a"))
		}
		lease, err := c.CoordinationV1().Leases("lbd").Get(context.Background(), "lbd-node-"+o.name, metav1.GetOptions{})
		if err != nil || lease.Annotations["lbd.io/l2-interfaces"] != "*,eth0" {
			t.Errorf("%s's liveness Lease does not publish its interfaces: %v %v", o.name, lease.Annotations, err)
		}
		if code, out, _ := lbd(t, "status", "--socket", o.socket); code != 0 || !strings.Contains(out, "default/web") || !strings.Contains(out, "owner") {
			t.Errorf("lbd status:\n%s", out)
		}
	})

	t.Run("kill -9 moves the address", func(t *testing.T) {
		l.t = t
		o := l.owner(web)
		if _, err := l.get(web, 2*time.Second); err != nil { // a fresh neighbour entry
			t.Fatal(err)
		}
		l.kill(o, syscall.SIGKILL)
		n := l.owner(web)
		waitFor(t, "the client's neighbour entry to move to "+n.name, func() bool { return l.neighMAC(web) == n.host.MAC })
		if got := l.arpMACs(web, 2); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("ARP answers from %v, want only %s", got, n.host.MAC)
		}
		// The killed node comes back with a new term of life: the
		// address stays where it is (no failback by default).
		l.start(o)
		waitFor(t, o.name+" back and planning", func() bool { return l.addressOf(o, web).Reason == "other_owner" })
		if got := l.announcers(web); !slices.Equal(got, []string{n.name}) {
			t.Errorf("after %s returned, %v announce %s", o.name, got, web)
		}
	})

	t.Run("owners stay put across a rolling restart and after a crash", func(t *testing.T) {
		l.t = t
		ctx := context.Background()
		recorded := func() string {
			s, err := c.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s.Annotations["lbd.io/l2-owner"]
		}
		o := l.owner(web)
		waitFor(t, o.name+"'s record on the Service", func() bool { return recorded() == o.name })

		// A rolling restart (SIGTERM, start, as systemctl restart does)
		// under a client probe: the address moves once, when its owner
		// restarts, and not back when that node returns.
		stop := l.traffic(web)
		back := func(n *labNode) bool {
			r := l.addressOf(n, web).Reason
			return r == "owner" || r == "other_owner"
		}
		want, moves := l.rollingRestart(web, back, func(step rollStep) {
			now := l.owner(web)
			if rec := recorded(); rec != now.name {
				t.Errorf("after restarting %s the record names %q, the owner is %s", step.node.name, rec, now.name)
			}
		})
		if moves != want {
			t.Errorf("the address moved %d times during the rolling restart, want %d (one per restart of its owner)", moves, want)
		}
		if failed, reset, served := stop(); failed != 0 || reset.instants > moves {
			t.Errorf("during the rolling restart (%d moves): %d failed requests, %v (served by %v)", moves, failed, reset, served)
		} else if reset.n > 0 {
			t.Logf("during the rolling restart: %v", reset)
		}

		// Now every lbd started after the Service was created. The owner
		// crashes: the address moves; the node is repaired and its lbd
		// starts again: the address stays where it moved.
		o = l.owner(web)
		l.kill(o, syscall.SIGKILL)
		n := l.newOwner(web, o)
		waitFor(t, n.name+"'s record on the Service", func() bool { return recorded() == n.name })
		before := l.takeovers(web)
		l.start(o)
		waitFor(t, o.name+" back and planning", func() bool { return l.addressOf(o, web).Reason != "not_alive" })
		// Measured before the owner record: back to the old owner as
		// soon as it planned, within 4 s of its start.
		time.Sleep(2 * time.Second)
		if got := l.addressOf(o, web).Reason; got != "other_owner" {
			t.Errorf("%s, back after a crash: reason %s for %s, want other_owner", o.name, got, web)
		}
		if got := l.announcers(web); !slices.Equal(got, []string{n.name}) {
			t.Errorf("after %s returned, %v announce %s, want only %s", o.name, got, web, n.name)
		}
		if got := l.takeovers(web) - before; got != 0 {
			t.Errorf("the address moved %d times after %s returned, want 0", got, o.name)
		}
	})

	t.Run("cable pull moves the address, and one node answers when it is back", func(t *testing.T) {
		l.t = t
		o := l.owner(web)
		if _, err := l.get(web, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		l.lab.Unplug(o.host)
		n := l.newOwner(web, o)
		waitFor(t, "the client's neighbour entry to move to "+n.name, func() bool { return l.neighMAC(web) == n.host.MAC })
		// Watch every ARP packet at the client from the moment the cable
		// is back: the old owner must not claim the address, even
		// between two requests.
		capture := l.client.Capture(t, "arp")
		l.lab.Plug(o.host)
		// 1s of ARP requests: only the new owner answers.
		if got := l.arpMACs(web, 4); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("within 1s of the cable coming back, ARP answers from %v, want only %s (%s)", got, n.name, n.host.MAC)
		}
		time.Sleep(time.Second)
		capture.Stop()
		for _, line := range capture.Read("arp") {
			if strings.Contains(strings.ToLower(line), o.host.MAC+" >") && (strings.Contains(line, web+" is-at") || strings.Contains(line, "tell "+web)) {
				t.Errorf("the returning node claimed %s: %s", web, line)
			}
		}
		waitFor(t, o.name+" to see the cluster again", func() bool {
			st := o.d.status(t)
			return strings.HasPrefix(st.Agent, "announcing") && !strings.Contains(st.Agent, "not answering") && l.addressOf(o, web).Reason == "other_owner"
		})
		if got := l.arpMACs(web, 2); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("once %s is back, ARP answers from %v, want only %s", o.name, got, n.host.MAC)
		}
	})

	t.Run("cordon hands over without a failed connection", func(t *testing.T) {
		l.t = t
		o := l.owner(web)
		if _, err := l.get(web, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		stop := l.traffic(web)
		time.Sleep(200 * time.Millisecond)
		l.cordon(o.name, true)
		defer l.cordon(o.name, false)
		n := l.newOwner(web, o)
		waitFor(t, "the client's neighbour entry to move to "+n.name, func() bool { return l.neighMAC(web) == n.host.MAC })
		waitFor(t, o.name+" to stop answering", func() bool { return l.addressOf(o, web).Reason == "cordoned" })
		time.Sleep(300 * time.Millisecond)
		failed, reset, served := stop()
		if failed != 0 || reset.instants > 1 || served[n.name] == 0 {
			t.Errorf("during the hand-over: %d failed requests, %v, served by %v", failed, reset, served)
		} else if reset.n > 0 {
			t.Logf("during the hand-over: %v", reset)
		}
		if got := l.arpMACs(web, 2); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("after the hand-over ARP answers from %v, want only %s", got, n.host.MAC)
		}
	})

	t.Run("the exclude label hands over", func(t *testing.T) {
		l.t = t
		o := l.owner(web)
		label := func(on bool) {
			patch := `{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":""}}}`
			if !on {
				patch = `{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":null}}}`
			}
			if _, err := c.CoreV1().Nodes().Patch(context.Background(), o.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		label(true)
		defer label(false)
		waitFor(t, "another node alone to announce "+web, func() bool {
			a := l.announcers(web)
			return len(a) == 1 && a[0] != o.name
		})
		n := l.owner(web)
		if r := l.addressOf(o, web).Reason; r != "excluded" {
			t.Errorf("%s's reason: %s", o.name, r)
		}
		if got := l.arpMACs(web, 2); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("ARP answers from %v, want only %s", got, n.host.MAC)
		}
	})

	t.Run("externalTrafficPolicy Local follows the endpoint", func(t *testing.T) {
		l.t = t
		l.createService("local", etpLocal)
		ip := ingressIPs(t, c, "default", "local")
		waitFor(t, "an address for default/local", func() bool { ip = ingressIPs(t, c, "default", "local"); return len(ip) == 1 })
		for _, node := range []string{"node-c", "node-a"} {
			l.setEndpoint("local", node)
			want := l.node(node)
			waitFor(t, node+" to own "+ip[0], func() bool { return l.owner(ip[0]) == want })
			// It answers once its conflict probe (3 x 100ms) is over.
			waitFor(t, node+" to answer ARP", func() bool { return slices.Contains(l.arpMACs(ip[0], 1), want.host.MAC) })
			if got := l.arpMACs(ip[0], 2); !slices.Equal(got, []string{want.host.MAC}) {
				t.Errorf("endpoint on %s: ARP answers from %v", node, got)
			}
			for _, x := range l.nodes {
				if x != want {
					if r := l.addressOf(x, ip[0]).Reason; r != "no_local_endpoints" {
						t.Errorf("%s's reason for %s: %s", x.name, ip[0], r)
					}
				}
			}
		}
	})

	t.Run("a foreign host on a pool address: not announced, and why", func(t *testing.T) {
		l.t = t
		const taken = "192.0.2.210"
		l.client.Must("ip", "addr", "add", taken+"/32", "dev", "eth0")
		defer l.client.Run("ip", "addr", "del", taken+"/32", "dev", "eth0")
		l.createService("taken", func(s *corev1.Service) {
			s.Annotations = map[string]string{"lbd.io/loadBalancerIPs": taken}
		})
		waitIPs(t, c, "default", "taken", taken)
		var owner *labNode
		waitFor(t, "the owner to report the conflict", func() bool {
			for _, n := range l.running() {
				if a := l.addressOf(n, taken); a.Reason == "conflict" && !a.Announcing {
					owner = n
					return true
				}
			}
			return false
		})
		waitEvent(t, c, "default", "taken", "Warning AddressConflict: "+taken+" is not announced")
		if got := l.announcers(taken); len(got) != 0 {
			t.Errorf("%v announce %s", got, taken)
		}
		// Only the foreign host answers ARP from another host's view:
		// ask from a node that does not own it.
		for _, n := range l.running() {
			if n != owner {
				out, _ := n.host.Run("arping", "-r", "-c", "2", "-W", "0.25", "-i", "eth0", taken)
				if got := distinct(out); !slices.Equal(got, []string{l.client.MAC}) {
					t.Errorf("ARP answers for %s from %v, want only the foreign host %s", taken, got, l.client.MAC)
				}
				break
			}
		}
		if m := l.metricsIn(owner); !strings.Contains(m, `lbd_address_decisions{reason="conflict"} 1`) {
			t.Errorf("owner's metrics:\n%s", grepLines(m, "lbd_address_decisions"))
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		l.t = t
		l.createService("dual", dualStack)
		var ips []string
		waitFor(t, "two addresses for default/dual", func() bool { ips = ingressIPs(t, c, "default", "dual"); return len(ips) == 2 })
		v4, v6 := ips[0], ips[1]
		if strings.Contains(v4, ":") {
			v4, v6 = v6, v4
		}
		o := l.owner(v6)
		if o4 := l.owner(v4); o4 != o {
			t.Errorf("dual-stack addresses split: %s on %s, %s on %s", v4, o4.name, v6, o.name)
		}
		if got := l.resolve6(v6); got != o.host.MAC {
			t.Errorf("the client resolved %s to %s, want the owner's %s", v6, got, o.host.MAC)
		}
		if got := l.ndiscMACs(v6); !slices.Equal(got, []string{o.host.MAC}) {
			t.Errorf("ndisc6 answers for %s from %v, want only the owner %s (%s)", v6, got, o.name, o.host.MAC)
		}
		if node, err := l.get(v6, 2*time.Second); err != nil || node != o.name {
			t.Errorf("HTTP to %s: %q %v", v6, node, err)
		}
		l.kill(o, syscall.SIGKILL)
		n := l.owner(v6)
		waitFor(t, "the client's IPv6 neighbour entry to move to "+n.name, func() bool { return l.neighMAC(v6) == n.host.MAC })
		if got := l.resolve6(v6); got != n.host.MAC {
			t.Errorf("the client resolved %s to %s, want %s", v6, got, n.host.MAC)
		}
		if got := l.ndiscMACs(v6); !slices.Equal(got, []string{n.host.MAC}) {
			t.Errorf("ndisc6 answers for %s from %v, want only the new owner %s (%s)", v6, got, n.name, n.host.MAC)
		}
		if got := l.announcers(v6); !slices.Equal(got, []string{n.name}) {
			t.Errorf("%v announce %s", got, v6)
		}
		l.start(o)
	})
}

func grepLines(s, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestResetsOf(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	iv := func(a, b int) [2]time.Time { return [2]time.Time{at(a), at(b)} }
	for _, c := range []struct {
		in   [][2]time.Time
		want resets
	}{
		{nil, resets{}},
		// Six requests open at 100 ms (one move on a slow machine).
		{[][2]time.Time{iv(0, 120), iv(20, 110), iv(40, 130), iv(60, 101), iv(80, 150), iv(99, 100)}, resets{6, 1}},
		// Two moves, or resets spread over time.
		{[][2]time.Time{iv(0, 50), iv(20, 60), iv(500, 560)}, resets{3, 2}},
		{[][2]time.Time{iv(0, 10), iv(20, 30), iv(40, 50), iv(60, 70)}, resets{4, 4}},
	} {
		if got := resetsOf(c.in); got != c.want {
			t.Errorf("resetsOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
