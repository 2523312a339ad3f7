package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/netlab"
	"github.com/lbdproject/lbd/internal/status"
)

// The lab's addresses: documentation ranges only.
const (
	Prefix   = "lbd-demo" // every namespace's name starts with it
	vip      = "192.0.2.10"
	etcdIP   = "192.0.2.9"
	clientIP = "192.0.2.50"
	torIP    = "192.0.2.254"
	torOut   = "198.51.100.1"
	remoteIP = "198.51.100.50"
	// Pools: web (L2, then BGP), lan (L2), ingress (one address, pinned).
	webPool     = "192.0.2.200/29"
	lanPool     = "192.0.2.208/29"
	ingressAddr = "192.0.2.240"
)

// node is one lab node: a namespace, lbd, and on workers the stand-in
// for kube-proxy; on control-plane nodes a kube-apiserver.
type node struct {
	name, ip string
	cp       bool
	host     *netlab.Host
	api      *kubetest.APIServer
	cfg      string // its /etc/lbd.yaml
	kc       string // its kubeconfig, server the VIP
	sock     string
	bgp      bool // the web pool is announced by BGP

	lbd  *exec.Cmd
	done chan struct{}
}

type lab struct {
	r       *runner
	o       Options
	out     io.Writer
	start   time.Time
	net     *netlab.Lab
	kube    *kubetest.Cluster
	kubectl string
	admin   string // admin kubeconfig, server the VIP

	etcd, client, tor, remote *netlab.Host
	frr                       *netlab.FRR
	cps, workers              []*node

	res Results
}

func (l *lab) all() []*node { return append(slices.Clone(l.cps), l.workers...) }

func (l *lab) node(name string) *node {
	for _, n := range l.all() {
		if n.name == name {
			return n
		}
	}
	l.r.Fatalf("no node %q", name)
	return nil
}

// say prints one line of the story.
func (l *lab) say(format string, args ...any) {
	fmt.Fprintf(l.out, "   "+format+"\n", args...)
}

func (l *lab) step(n int, title string) {
	fmt.Fprintf(l.out, "\n\033[1m== %d. %s\033[0m  [%s]\n", n, title, l.since())
}

func (l *lab) since() string {
	return fmt.Sprintf("%.0fs", time.Since(l.start).Seconds())
}

// build makes the namespaces, etcd, the API servers, the router and the
// stand-ins; lbd is not started yet.
func (l *lab) build() {
	r := l.r
	l.net = netlab.NewNamed(r, Prefix)
	l.etcd = l.net.AddHost("etcd", etcdIP+"/24")
	for i := 1; i <= 3; i++ {
		l.cps = append(l.cps, l.addNode(fmt.Sprintf("cp%d", i), fmt.Sprintf("192.0.2.1%d", i), true))
	}
	for i := 1; i <= 3; i++ {
		l.workers = append(l.workers, l.addNode(fmt.Sprintf("w%d", i), fmt.Sprintf("192.0.2.2%d", i), false))
	}
	l.client = l.net.AddHost("client", clientIP+"/24")
	l.tor = l.net.AddHost("tor", torIP+"/24")
	l.remote = l.net.AddWire(l.tor, "eth1", torOut+"/24", "remote", remoteIP+"/24")
	l.remote.Must("ip", "route", "add", "default", "via", torOut)
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
		"net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.fib_multipath_hash_policy=1"} {
		l.tor.Sysctl(kv)
	}
	l.say("namespaces %s-*: a switch; etcd %s; control-plane nodes cp1-cp3 (192.0.2.11-13);", Prefix, etcdIP)
	l.say("workers w1-w3 (192.0.2.21-23); a client (%s); a router, tor (%s, FRR),", clientIP, torIP)
	l.say("and behind it a remote client (%s)", remoteIP)

	l.frr = netlab.StartFRRWithBFD(r, l.tor, torConfig, bfddConfig)
	l.say("router: FRR (bgpd, bfdd, zebra) in tor, AS 64501, BGP open to 192.0.2.0/24, BFD 300ms x 3")

	t0 := time.Now()
	servingIPs := []string{vip}
	for _, n := range l.cps {
		servingIPs = append(servingIPs, n.ip)
	}
	l.kube = kubetest.StartIn(r, l.etcd, etcdIP, kubetest.WithBinDir(l.o.Bins), kubetest.WithSharedEtcd(),
		kubetest.WithServingIPs(servingIPs...), kubetest.WithServiceClusterIPRange("10.96.0.0/16"))
	var wg sync.WaitGroup
	errs := make([]error, len(l.cps))
	for i, n := range l.cps {
		wg.Go(func() {
			n.api, errs[i] = l.kube.AddAPIServer(kubetest.WithCommandPrefix(n.host.Prefix()...),
				kubetest.WithBindAddress(n.ip), kubetest.WithDialer(n.host.DialContext),
				kubetest.WithAPIServerArgs("--bind-address=0.0.0.0"))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			r.Fatalf("kube-apiserver on %s: %v", l.cps[i].name, err)
		}
	}
	l.say("etcd, and a kube-apiserver on each control-plane node (%.1fs)", time.Since(t0).Seconds())

	ctx := context.Background()
	if err := kubetest.Apply(ctx, l.kube.Client, l.o.RBAC); err != nil {
		r.Fatalf("applying %s: %v", l.o.RBAC, err)
	}
	for _, n := range l.all() {
		labels := map[string]string{"kubernetes.io/hostname": n.name}
		groups := []string{"lbd:nodes"}
		if n.cp {
			// kubeadm labels control-plane nodes so: they hold the VIP
			// and never announce Service addresses.
			labels["node-role.kubernetes.io/control-plane"] = ""
			labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
			groups = append(groups, "lbd:control-plane")
		}
		if _, err := l.kube.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			r.Fatal(err)
		}
		kc, err := l.kube.UserKubeconfig("lbd:node:"+n.name, groups, 365*24*time.Hour, "https://"+vip+":6443")
		if err != nil {
			r.Fatal(err)
		}
		copyFile(r, kc, n.kc)
	}
	admin, err := l.kube.UserKubeconfig("demo-admin", []string{"system:masters"}, 30*24*time.Hour, "https://"+vip+":6443")
	if err != nil {
		r.Fatal(err)
	}
	copyFile(r, admin, l.admin)
	l.say("RBAC from etc/lbd-rbac.yaml; Node objects; a client certificate per node (lbd:node:NAME)")

	for _, n := range l.workers {
		// The stand-in for kube-proxy: the pools are local addresses
		// (the kernel does not answer ARP for them: arp_ignore=1) and
		// an HTTP server on port 80 says which node served.
		for _, p := range []string{webPool, lanPool, ingressAddr + "/32"} {
			n.host.Must("ip", "route", "add", "local", p, "dev", "lo")
		}
		n.host.Must("ip", "route", "add", "198.51.100.0/24", "via", torIP)
		l.startStandIn(n)
	}
	l.say("on each worker, a stand-in for kube-proxy: an HTTP server on :80 of the pools' addresses")
	l.res.SetupSeconds = time.Since(l.start).Seconds()
}

func (l *lab) addNode(name, ip string, cp bool) *node {
	n := &node{name: name, ip: ip, cp: cp,
		cfg: filepath.Join(l.o.Dir, name+".yaml"), kc: filepath.Join(l.o.Dir, name+".kubeconfig"),
		sock: filepath.Join(l.o.Dir, name+".sock")}
	n.host = l.net.AddHost(name, ip+"/24")
	return n
}

func copyFile(r *runner, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		r.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		r.Fatal(err)
	}
}

// startStandIn runs the stand-in for kube-proxy in n.
func (l *lab) startStandIn(n *node) {
	cmd := n.host.Command(append(slices.Clone(l.o.StandIn), n.name)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		l.r.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.r.Fatal(err)
	}
	l.r.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil {
		l.r.Fatalf("stand-in on %s: %v", n.name, err)
	}
}

// ServeStandIn is the stand-in for kube-proxy on a node: it answers every
// HTTP request on port 80 with the node's name.
func ServeStandIn(name string) error {
	ln, err := net.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, name+"\n")
	}))
}

// writeConfig writes n's /etc/lbd.yaml.
func (l *lab) writeConfig(n *node) {
	web := "l2:\n  advertisements:\n    - {name: web, pools: [web]}\n    - {name: lan, pools: [lan, ingress]}\n"
	if n.bgp {
		web = `l2:
  advertisements:
    - {name: lan, pools: [lan, ingress]}
bgp:
  asn: 64512
  peers:
    - {name: tor, address: ` + torIP + `, asn: 64501, connect_retry: 1s, bfd: {}}
  advertisements:
    - {name: web, pools: [web]}
`
	}
	cp := ""
	if n.cp {
		cp = fmt.Sprintf(`control_plane:
  addresses: [%s]
  interface: eth0
  local_api_server: https://%s:6443
`, vip, n.ip)
	}
	text := fmt.Sprintf(`# The demo lab's /etc/lbd.yaml for %s.
version: 1
node: {name: %s}
kubernetes:
  kubeconfig: %s
pools:
  - {name: web, addresses: [%s]}
  - {name: lan, addresses: [%s], auto_assign: false}
  - {name: ingress, addresses: [%s/32], auto_assign: false, namespaces: [ingress]}
%s%slisten: {http: "127.0.0.1:7475", socket: %s}
`, n.name, n.name, n.kc, webPool, lanPool, ingressAddr, web, cp, n.sock)
	tmp := n.cfg + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		l.r.Fatal(err)
	}
	if err := os.Rename(tmp, n.cfg); err != nil {
		l.r.Fatal(err)
	}
}

// startLbd runs `lbd run` in n, its output in logs/NAME.log.
func (l *lab) startLbd(n *node) {
	l.writeConfig(n)
	logf, err := os.OpenFile(filepath.Join(l.o.Dir, "logs", n.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.r.Fatal(err)
	}
	cmd := n.host.Command(l.o.Lbd, "run", "-c", n.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.r.Fatal(err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.lbd, n.done = cmd, done
	// The whole lab goes at once: no hand-over to wait for.
	l.r.Cleanup(func() { cmd.Process.Kill(); <-done })
	l.waitFor(15*time.Second, n.name+"'s lbd to answer on its socket", func() bool { return l.status(n) != nil })
}

func (n *node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// powerOff is a node losing power: its cable goes dead and its lbd (and
// API server) die at once, with no goodbye.
func (l *lab) powerOff(n *node) {
	l.net.Unplug(n.host)
	n.lbd.Process.Kill()
	<-n.done
	if n.api != nil {
		if err := n.api.Kill(); err != nil {
			l.r.Fatal(err)
		}
	}
}

// powerOn brings n back: cable, API server, lbd.
func (l *lab) powerOn(n *node) {
	l.net.Plug(n.host)
	if n.api != nil {
		if err := n.api.Start(); err != nil {
			l.r.Fatal(err)
		}
	}
	l.startLbd(n)
}

// status is n's `lbd status` (nil if lbd does not answer).
func (l *lab) status(n *node) *status.Status {
	if !n.running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := daemon.Call(ctx, n.sock, daemon.Request{Command: "status"})
	if err != nil || !resp.OK {
		return nil
	}
	return resp.Status
}

// addressOf is n's decision for ip.
func (l *lab) addressOf(n *node, ip string) status.Address {
	if st := l.status(n); st != nil {
		for _, a := range st.Addresses {
			if a.IP == ip {
				return a
			}
		}
	}
	return status.Address{}
}

// owners are the running nodes that announce ip at L2.
func (l *lab) owners(ip string) []string {
	var out []string
	for _, n := range l.workers {
		if a := l.addressOf(n, ip); a.Announcing && a.Reason == "owner" {
			out = append(out, n.name)
		}
	}
	return out
}

// soleOwner waits until exactly one node, not except, owns ip.
func (l *lab) soleOwner(ip, except string) *node {
	var who []string
	l.waitFor(20*time.Second, "one owner of "+ip, func() bool {
		who = l.owners(ip)
		return len(who) == 1 && who[0] != except
	})
	return l.node(who[0])
}

// waitFor polls cond every 20ms until it holds, and fails the demo after d.
func (l *lab) waitFor(d time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			l.r.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vipHolders are the control-plane nodes that have the VIP on eth0.
func (l *lab) vipHolders() []*node {
	var hs []*node
	for _, n := range l.cps {
		if n.host.HasAddr(vip) {
			hs = append(hs, n)
		}
	}
	return hs
}

// leaseHolder is the holder the control-plane Lease names.
func (l *lab) leaseHolder() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	le, err := l.kube.Client.CoordinationV1().Leases("kube-system").Get(ctx, "lbd-cp", metav1.GetOptions{})
	if err != nil || le.Spec.HolderIdentity == nil {
		return ""
	}
	return *le.Spec.HolderIdentity
}

// soleVIPHolder waits until one node, not except, has the VIP and the
// Lease names it.
func (l *lab) soleVIPHolder(except string) *node {
	var h *node
	l.waitFor(30*time.Second, "one holder of the control-plane VIP", func() bool {
		hs := l.vipHolders()
		if len(hs) != 1 || hs[0].name == except || l.leaseHolder() != hs[0].name {
			return false
		}
		h = hs[0]
		return true
	})
	return h
}

// kubectl runs kubectl in the client's namespace, through the VIP.
func (l *lab) kubectlOut(args ...string) (string, error) {
	argv := append([]string{l.kubectl, "--kubeconfig", l.admin, "--request-timeout", "5s"}, args...)
	return l.client.Run(argv...)
}

// kubectlShow runs kubectl as the user would and prints the command and
// its output.
func (l *lab) kubectlShow(args ...string) (string, error) {
	l.say("$ kubectl %s        # from the client, through the VIP", strings.Join(args, " "))
	out, err := l.kubectlOut(args...)
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		l.say("  %s", line)
	}
	return out, err
}

// kubectlShowUntil runs kubectl as kubectlShow does until it succeeds and
// its output contains want, for at most d, and says so: the first
// request through a VIP that has just moved may meet an API server slow
// to answer on a loaded machine, and a user would run it again. Each
// failed try is printed, with why.
func (l *lab) kubectlShowUntil(d time.Duration, want string, args ...string) (string, error) {
	deadline := time.Now().Add(d)
	for {
		out, err := l.kubectlShow(args...)
		if err == nil && strings.Contains(out, want) {
			return out, nil
		}
		if err == nil {
			err = fmt.Errorf("the output does not name %s", want)
		}
		if time.Now().After(deadline) {
			return out, err
		}
		l.say("(kubectl: %v; again in 1s)", err)
		time.Sleep(time.Second)
	}
}

// get makes one HTTP request to ip from h and returns who answered.
func get(h *netlab.Host, ip string, timeout time.Duration) (string, error) {
	body, err := h.Get(ip, timeout)
	return strings.TrimSpace(body), err
}

// curl waits until a request from h to ip succeeds and returns who
// served it, printing the command as the user would type it.
func (l *lab) curl(h *netlab.Host, ip string) string {
	var body string
	l.waitFor(20*time.Second, "an answer from http://"+ip+"/", func() bool {
		var err error
		body, err = get(h, ip, time.Second)
		return err == nil
	})
	l.say("$ curl http://%s/        # from %s: %s", ip, h.Name, body)
	return body
}
