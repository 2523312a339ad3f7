// Package netlab builds labs of network namespaces for tests: a switch (a
// Linux bridge in its own namespace) with hosts plugged into it, each host
// a namespace with one interface, eth0. Tests run the daemons under test as
// their own processes inside the hosts (Host.Command), pull cables by
// setting the switch-side port down (Lab.Unplug), and reach services in a
// host from the test process itself with Host.DialContext.
//
// Every lab touches only namespaces it created, and removes them when the
// test ends. Tests use documentation addresses only (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Need skips the test unless it runs as root with ip(8) and the given
// tools installed.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace test: needs root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network namespace test: %s not installed", tool)
		}
	}
}

// Lab is a switch and the hosts plugged into it.
type Lab struct {
	t testing.TB
	// Prefix starts the name of every namespace of this lab.
	Prefix string
	// Switch is the namespace that holds the bridge br0.
	Switch string
	hosts  []*Host
}

// Host is one namespace on the lab's segment.
type Host struct {
	lab *Lab
	// Name is the short name given to AddHost; NS the namespace's name.
	Name, NS string
	// Port is the host's port on the switch (in the Switch namespace).
	Port string
	// MAC is eth0's hardware address, lower case.
	MAC string
	// Addrs are the addresses given to AddHost, with their prefix length.
	Addrs []string
}

// Interface is the name of every host's interface on the segment.
const Interface = "eth0"

// Sysctls that every host gets, whatever the machine's defaults are: no
// DAD (addresses usable at once), and the ARP settings kube-proxy in IPVS
// mode and lbd's docs ask for, so the kernel answers ARP only for
// addresses on the asking interface.
var hostSysctls = []string{
	"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
	"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1",
	"net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.default.arp_announce=2",
	"net.ipv4.conf.all.arp_accept=0", "net.ipv4.conf.default.arp_accept=0",
	"net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0",
}

// New makes an empty switch. The lab is removed when the test ends.
func New(t testing.TB) *Lab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	return NewNamed(t, "lbdl-"+hex.EncodeToString(b))
}

// NewNamed is New with the namespaces' prefix given, for a lab that must
// be found again by name (the demo's `down`). Its namespaces are
// prefix-NAME; making one that exists fails.
func NewNamed(t testing.TB, prefix string) *Lab {
	t.Helper()
	Need(t)
	l := &Lab{t: t, Prefix: prefix}
	l.Switch = l.addNS("sw")
	l.Must("ip", "-n", l.Switch, "link", "add", "br0", "type", "bridge")
	// No spanning tree delay: a port forwards as soon as it is up.
	l.Must("ip", "-n", l.Switch, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.Must("ip", "-n", l.Switch, "link", "set", "br0", "up")
	// Bridged frames must not go through the host's firewall; these
	// exist only when br_netfilter is loaded.
	for _, k := range []string{"call-iptables", "call-ip6tables", "call-arptables"} {
		_, _ = sh("ip", "netns", "exec", l.Switch, "sysctl", "-q", "-w", "net.bridge.bridge-nf-"+k+"=0")
	}
	return l
}

// addNS creates the namespace Prefix-name, with lo up, and registers its
// removal.
func (l *Lab) addNS(name string) string {
	l.t.Helper()
	ns := l.Prefix + "-" + name
	l.Must("ip", "netns", "add", ns)
	l.t.Cleanup(func() {
		if out, err := sh("ip", "netns", "del", ns); err != nil {
			l.t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	l.Must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// AddHost plugs a new host into the switch, with addrs (CIDR notation) on
// its eth0, and waits until the link is usable.
func (l *Lab) AddHost(name string, addrs ...string) *Host {
	l.t.Helper()
	h := &Host{lab: l, Name: name, Port: "p-" + name, Addrs: addrs}
	h.NS = l.addNS(name)
	for _, kv := range hostSysctls {
		l.Must("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", kv)
	}
	l.Must("ip", "-n", l.Switch, "link", "add", h.Port, "type", "veth", "peer", "name", Interface, "netns", h.NS)
	l.Must("ip", "-n", l.Switch, "link", "set", h.Port, "master", "br0")
	l.Must("ip", "-n", l.Switch, "link", "set", h.Port, "up")
	for _, a := range addrs {
		l.Must("ip", "-n", h.NS, "addr", "add", a, "dev", Interface, "nodad")
	}
	l.Must("ip", "-n", h.NS, "link", "set", Interface, "up")
	var links []struct {
		Address string `json:"address"`
	}
	out := l.Must("ip", "-n", h.NS, "-j", "link", "show", "dev", Interface)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		l.t.Fatalf("netlab: MAC of %s in %s: %v %s", Interface, h.NS, err, out)
	}
	h.MAC = strings.ToLower(links[0].Address)
	l.hosts = append(l.hosts, h)
	return h
}

// AddWire makes a host name that is not on the switch but wired to h
// alone: a veth pair from h's ifname (with addr) to the new host's eth0
// (with addrs), as a router's second port.
func (l *Lab) AddWire(h *Host, ifname, addr, name string, addrs ...string) *Host {
	l.t.Helper()
	w := &Host{lab: l, Name: name, Addrs: addrs}
	w.NS = l.addNS(name)
	for _, kv := range hostSysctls {
		l.Must("ip", "netns", "exec", w.NS, "sysctl", "-q", "-w", kv)
	}
	l.Must("ip", "-n", h.NS, "link", "add", ifname, "type", "veth", "peer", "name", Interface, "netns", w.NS)
	l.Must("ip", "-n", h.NS, "addr", "add", addr, "dev", ifname, "nodad")
	l.Must("ip", "-n", h.NS, "link", "set", ifname, "up")
	for _, a := range addrs {
		l.Must("ip", "-n", w.NS, "addr", "add", a, "dev", Interface, "nodad")
	}
	l.Must("ip", "-n", w.NS, "link", "set", Interface, "up")
	l.hosts = append(l.hosts, w)
	return w
}

// Unplug pulls h's cable: its switch port goes down, and h keeps its
// addresses and routes, as with a real cable.
func (l *Lab) Unplug(h *Host) {
	l.t.Helper()
	l.Must("ip", "-n", l.Switch, "link", "set", h.Port, "down")
}

// Plug puts h's cable back.
func (l *Lab) Plug(h *Host) { l.t.Helper(); l.Must("ip", "-n", l.Switch, "link", "set", h.Port, "up") }

// Must runs a command and fails the test if it fails; it returns the
// combined output.
func (l *Lab) Must(args ...string) string {
	l.t.Helper()
	out, err := sh(args...)
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Command returns a command that runs argv inside h. ip netns exec execs
// argv in place, so the command's PID is argv's and it can be signalled.
func (h *Host) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS}, argv...)...)
}

// Run runs argv inside h and returns its combined output and error.
func (h *Host) Run(argv ...string) (string, error) {
	out, err := h.Command(argv...).CombinedOutput()
	return string(out), err
}

// Must runs argv inside h and fails the test if it fails.
func (h *Host) Must(argv ...string) string {
	h.lab.t.Helper()
	return h.lab.Must(append([]string{"ip", "netns", "exec", h.NS}, argv...)...)
}

// Prefix returns argv's prefix that runs a program inside h, for APIs that
// take one (kubetest.WithCommandPrefix).
func (h *Host) Prefix() []string { return []string{"ip", "netns", "exec", h.NS} }

// Sysctl sets a sysctl inside h.
func (h *Host) Sysctl(kv string) { h.lab.t.Helper(); h.Must("sysctl", "-q", "-w", kv) }

// DialContext opens a connection from inside h: the socket is created in
// h's namespace on a locked OS thread, which then returns to the test's
// own namespace. Use it as a Dialer for clients in the test process
// (http.Transport.DialContext, rest.Config.Dial).
//
// The thread is not thrown away after use: a child process started with
// Pdeathsig (as kubetest does) is killed when the thread that forked it
// exits, and any thread may have forked one.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		back, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("netlab: current namespace: %w", err)}
			return
		}
		defer back.Close()
		target, err := netns.GetFromName(h.NS)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("netlab: namespace %s: %w", h.NS, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("netlab: enter %s: %w", h.NS, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if netns.Set(back) == nil {
			// Only a thread back in its own namespace may run other
			// goroutines; otherwise it stays locked and exits with us.
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Get makes one HTTP request from inside h to port 80 of ip, without
// keep-alive (each request is a new connection, as a failover probe
// needs), and returns the body of a 200 answer.
func (h *Host) Get(ip string, timeout time.Duration) (string, error) {
	body, _, err := h.GetConn(ip, timeout)
	return body, err
}

// GetConn is Get that also returns the local TCP port of the request's
// connection (0 if none was made), to find its packets in a Capture.
func (h *Host) GetConn(ip string, timeout time.Duration) (body string, port int, err error) {
	var local atomic.Int64
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := h.DialContext(ctx, network, address)
		if err == nil {
			if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
				local.Store(int64(a.Port))
			}
		}
		return c, err
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, "80") + "/")
	if err != nil {
		return "", int(local.Load()), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", int(local.Load()), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), int(local.Load()), err
}

// HasAddr reports whether addr (no prefix length) is on h's eth0.
func (h *Host) HasAddr(addr string) bool {
	out, err := h.Run("ip", "-j", "addr", "show", "dev", Interface)
	if err != nil {
		return false
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if json.Unmarshal([]byte(out), &links) != nil {
		return false
	}
	for _, lk := range links {
		for _, a := range lk.AddrInfo {
			if a.Local == addr {
				return true
			}
		}
	}
	return false
}

// WaitReachable waits until from can ping ip (both ways of the segment
// work), failing the test after timeout.
func (l *Lab) WaitReachable(from *Host, ip string, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := from.Run("ping", "-c", "1", "-W", "1", ip); err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("netlab: %s cannot reach %s after %v", from.Name, ip, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sh(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
