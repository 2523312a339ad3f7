package main

// The control-plane lab: three control-plane nodes, each with its own
// kube-apiserver on :6443 against one shared etcd (in its own host, "db"),
// each running `lbd run` with a control_plane section, and a client host
// that opens TCP connections to the VIP.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/netlab"
)

const (
	vip4 = "192.0.2.10"
	vip6 = "2001:db8::10"
)

type cpLab struct {
	t      testing.TB // the running (sub)test
	root   testing.TB // the test that owns the processes
	lab    *netlab.Lab
	kube   *kubetest.Cluster
	dir    string
	client *netlab.Host
	nodes  []*cpNode
}

type cpNode struct {
	name string
	ip   string
	host *netlab.Host
	api  *kubetest.APIServer
	cfg  string
	kc   string // its kubeconfig (server: the VIP)
	lbd  *labDaemon
}

// labDaemon is one `lbd run` inside a lab host.
type labDaemon struct {
	pid  int
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// newCPLab builds the lab and starts etcd (with the test's own API server)
// in db; the nodes' API servers and lbd are started by the caller.
func newCPLab(t testing.TB) *cpLab {
	t.Helper()
	netlab.Need(t)
	l := &cpLab{t: t, root: t, lab: netlab.New(t), dir: t.TempDir()}
	db := l.lab.AddHost("db", "192.0.2.9/24", "2001:db8::9/64")
	l.client = l.lab.AddHost("client", "192.0.2.50/24", "2001:db8::50/64")
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("192.0.2.1%d", i)
		n := &cpNode{name: fmt.Sprintf("cp%d", i), ip: ip}
		n.host = l.lab.AddHost(n.name, ip+"/24", fmt.Sprintf("2001:db8::1%d/64", i))
		l.nodes = append(l.nodes, n)
	}
	l.kube = kubetest.StartIn(t, db, "192.0.2.9",
		kubetest.WithSharedEtcd(),
		kubetest.WithServingIPs(vip4, vip6, "192.0.2.11", "192.0.2.12", "192.0.2.13"))
	for _, n := range l.nodes {
		n.cfg = filepath.Join(l.dir, n.name+".yaml")
		n.kc = filepath.Join(l.dir, n.name+".kubeconfig")
		write(t, n.cfg, fmt.Sprintf(`version: 1
node: {name: %s}
kubernetes: {kubeconfig: %s}
control_plane:
  addresses: [%s, "%s"]
  interface: eth0
  local_api_server: https://%s:6443
listen: {http: "127.0.0.1:7475", socket: %s}
log: {level: info}
`, n.name, n.kc, vip4, vip6, n.ip, filepath.Join(l.dir, n.name+".sock")))
	}
	return l
}

// writeKubeconfig writes each node's own kubeconfig, its server the VIP
// (as kubeadm writes them with --control-plane-endpoint), for a user in
// lbd:nodes and lbd:control-plane under the shipped RBAC manifest.
func (l *cpLab) writeKubeconfig() {
	for _, n := range l.nodes {
		data, err := os.ReadFile(lbdKubeconfig(l.t, l.kube, n.name, true, "https://"+vip4+":6443"))
		if err != nil {
			l.t.Fatal(err)
		}
		write(l.t, n.kc, string(data))
	}
}

// startAPI starts n's kube-apiserver and returns when it is ready.
func (l *cpLab) startAPI(n *cpNode) {
	l.t.Helper()
	if n.api == nil {
		a, err := l.kube.AddAPIServer(kubetest.WithCommandPrefix(n.host.Prefix()...),
			kubetest.WithBindAddress(n.ip), kubetest.WithDialer(n.host.DialContext),
			// Listen on every address, as kubeadm's API servers do, so
			// that the VIP reaches it too.
			kubetest.WithAPIServerArgs("--bind-address=0.0.0.0"))
		if err != nil {
			l.t.Fatal(err)
		}
		n.api = a
		return
	}
	if err := n.api.Start(); err != nil {
		l.t.Fatal(err)
	}
}

// startLbd runs `lbd run` in n.
func (l *cpLab) startLbd(n *cpNode) {
	l.t.Helper()
	d := &labDaemon{done: make(chan struct{})}
	cmd := n.host.Command(labBin(l.t), "run", "-c", n.cfg)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	d.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(d.done) }()
	n.lbd = d
	name := n.name
	t := l.root
	t.Cleanup(func() {
		_ = syscall.Kill(d.pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			<-d.done
		}
		if t.Failed() || os.Getenv("LBD_TEST_LOGS") != "" {
			d.mu.Lock()
			t.Logf("lbd log of %s (pid %d):\n%s", name, d.pid, d.log.String())
			d.mu.Unlock()
		}
	})
}

// stopLbd signals n's lbd and waits for it to exit.
func (l *cpLab) stopLbd(n *cpNode, sig syscall.Signal) {
	l.t.Helper()
	if err := syscall.Kill(n.lbd.pid, sig); err != nil {
		l.t.Fatal(err)
	}
	l.waitExit(n, sig)
}

// waitExit waits for n's lbd to exit after sig.
func (l *cpLab) waitExit(n *cpNode, sig syscall.Signal) {
	l.t.Helper()
	select {
	case <-n.lbd.done:
	case <-time.After(10 * time.Second):
		l.t.Fatalf("lbd on %s did not exit after %v", n.name, sig)
	}
}

func (n *cpNode) running() bool {
	select {
	case <-n.lbd.done:
		return false
	default:
		return true
	}
}

// hasVIP reports whether addr is on n's eth0.
func (n *cpNode) hasVIP(addr string) bool { return n.host.HasAddr(addr) }

// holders lists the nodes that have the IPv4 VIP.
func (l *cpLab) holders() []*cpNode {
	var hs []*cpNode
	for _, n := range l.nodes {
		if n.hasVIP(vip4) {
			hs = append(hs, n)
		}
	}
	return hs
}

// leaseHolder is the holder the control-plane Lease names ("" if none).
func (l *cpLab) leaseHolder() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	le, err := l.kube.Client.CoordinationV1().Leases("kube-system").Get(ctx, "lbd-cp", metav1.GetOptions{})
	if err != nil || le.Spec.HolderIdentity == nil {
		return ""
	}
	return *le.Spec.HolderIdentity
}

// waitSoleHolder waits until exactly one node, not one of except, has the
// VIP (both families) and the Lease names it; it returns that node.
func (l *cpLab) waitSoleHolder(timeout time.Duration, except ...*cpNode) *cpNode {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		hs := l.holders()
		if len(hs) == 1 && !slices.Contains(except, hs[0]) && hs[0].hasVIP(vip6) && l.leaseHolder() == hs[0].name {
			return hs[0]
		}
		if time.Now().After(deadline) {
			var names []string
			for _, h := range hs {
				names = append(names, h.name)
			}
			l.t.Fatalf("after %v: VIP on %v, Lease names %q; want exactly one node other than %v", timeout, names, l.leaseHolder(), nodeNames(except))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeNames(ns []*cpNode) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return s
}

// metrics scrapes n's lbd.
func (n *cpNode) metrics(t testing.TB) map[string]string {
	t.Helper()
	hc := &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{DialContext: n.host.DialContext}}
	resp, err := hc.Get("http://127.0.0.1:7475/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := map[string]string{}
	for _, match := range metricRE.FindAllStringSubmatch(string(body), -1) {
		m[match[1]] = match[2]
	}
	return m
}

// probe opens a TCP connection to addr from the client every 20ms
// (netlab.Prober: an attempt that takes 900ms or more lost its SYN and
// waited for a retransmission, and counts as failed).
func (l *cpLab) probe(addr string) *netlab.Prober {
	return netlab.StartProbe(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := l.client.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// dialVIP opens one connection to addr from the client.
func (l *cpLab) dialVIP(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := l.client.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}
