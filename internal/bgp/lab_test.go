package bgp_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
	"github.com/lbdproject/lbd/internal/testbin"
)

// The labs: a router and three nodes on one segment, with documentation
// addresses only. Service routes come from pool 192.0.2.0/24 and
// 2001:db8:5::/64; the client segment beyond the router is 203.0.113.0/24.
const (
	routerV4 = "198.51.100.1"
	routerV6 = "2001:db8:1::1"
	svcV4    = "192.0.2.10"
	svcV6    = "2001:db8:5::10"
	routerAS = 64501
	nodeAS   = 64512
)

var nodeV4 = []string{"198.51.100.11", "198.51.100.12", "198.51.100.13"}
var nodeV6 = []string{"2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"}

type bgpLab struct {
	t      testing.TB
	lab    *netlab.Lab
	router *netlab.Host
	nodes  []*netlab.Host
	dir    string
}

func newLab(t testing.TB) *bgpLab {
	t.Helper()
	l := netlab.New(t)
	b := &bgpLab{t: t, lab: l, dir: t.TempDir()}
	b.router = l.AddHost("r", routerV4+"/24", routerV6+"/64")
	b.router.Sysctl("net.ipv4.fib_multipath_hash_policy=1")
	b.router.Sysctl("net.ipv6.fib_multipath_hash_policy=1")
	for i := range nodeV4 {
		b.nodes = append(b.nodes, l.AddHost(fmt.Sprintf("n%d", i+1), nodeV4[i]+"/24", nodeV6[i]+"/64"))
	}
	for _, n := range b.nodes {
		l.WaitReachable(n, routerV4, 5*time.Second)
	}
	return b
}

// TestMain removes the helper built for the labs.
func TestMain(m *testing.M) {
	helper = &testbin.Build{Pkg: "./internal/bgphelper", Name: "bgphelper"}
	if raceDetector {
		helper.Flags = []string{"-race"}
	}
	code := m.Run()
	helper.Remove()
	os.Exit(code)
}

// raceDetector is true in a test binary built with -race (race_test.go).
var raceDetector bool

// helper is internal/bgphelper, built on first use, with the race
// detector when the test binary has it.
var helper *testbin.Build

// helperPath returns the helper's path.
func helperPath(t testing.TB) string {
	t.Helper()
	return helper.Path(t)
}

// nodeConfig is an lbd.yaml for a node peering with the router over
// IPv4 and IPv6.
func nodeConfig(asn int, extra string) string {
	return fmt.Sprintf(`version: 1
node: {name: n}
pools:
  - name: p
    addresses: [192.0.2.0/24, "2001:db8:5::/64"]
bgp:
  asn: %d
  peers:
    - name: tor
      address: %s
      asn: %d
      hold_time: 90s
      keepalive: 30s
      connect_retry: 1s
%s    - name: tor6
      address: "%s"
      asn: %d
      hold_time: 90s
      keepalive: 30s
      connect_retry: 1s
  advertisements:
    - name: all
      pools: [p]
`, asn, routerV4, routerAS, extra, routerV6, routerAS)
}

// speaker is a bgphelper process in a node.
type speaker struct {
	t      testing.TB
	node   *netlab.Host
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	logs   *syncBuf
	done   chan struct{}
	waited error
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startSpeaker runs bgphelper in node with the config text and waits
// until it has applied it.
func (b *bgpLab) startSpeaker(node *netlab.Host, config string) *speaker {
	b.t.Helper()
	return b.startSpeakerWith(node, config)
}

// restartSpeaker starts a node's speaker as lbd run starts after a crash
// or restart: with its routes (prefixes) in place before any session
// opens, so its End-of-RIB never flushes a route it has not announced.
func (b *bgpLab) restartSpeaker(node *netlab.Host, config string, prefixes ...string) *speaker {
	b.t.Helper()
	return b.startSpeakerWith(node, config, prefixes...)
}

// startSpeakerWith starts the helper; with prefixes, those are its routes
// before its sessions open.
func (b *bgpLab) startSpeakerWith(node *netlab.Host, config string, prefixes ...string) *speaker {
	b.t.Helper()
	file := filepath.Join(b.dir, node.Name+".yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		b.t.Fatal(err)
	}
	s := &speaker{t: b.t, node: node, logs: &syncBuf{}, done: make(chan struct{})}
	args := []string{"-c", file}
	if prefixes != nil {
		args = append(args, "-first")
	}
	s.cmd = node.Command(append([]string{helperPath(b.t)}, args...)...)
	s.cmd.Stderr = s.logs
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		b.t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	s.out = bufio.NewScanner(stdout)
	s.out.Buffer(make([]byte, 1<<20), 1<<20)
	if err := s.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { s.waited = s.cmd.Wait(); close(s.done) }()
	b.t.Cleanup(func() {
		s.cmd.Process.Kill() // by PID: ip netns exec execs the helper in place
		<-s.done
		if b.t.Failed() {
			b.t.Logf("%s's log:\n%s", node.Name, s.logs)
		}
	})
	if prefixes != nil {
		s.announce(prefixes...)
	}
	if line := s.read(); line != "started" {
		b.t.Fatalf("%s: bgphelper said %q\n%s", node.Name, line, s.logs)
	}
	return s
}

func (s *speaker) read() string {
	s.t.Helper()
	if !s.out.Scan() {
		s.t.Fatalf("%s: bgphelper ended: %v\n%s", s.node.Name, s.out.Err(), s.logs)
	}
	return s.out.Text()
}

func (s *speaker) send(cmd string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
		s.t.Fatalf("%s: %v", s.node.Name, err)
	}
	return s.read()
}

// announce sets the node's routes to prefixes (v4 and v6 host routes).
func (s *speaker) announce(prefixes ...string) {
	s.t.Helper()
	var rs []string
	for _, p := range prefixes {
		rs = append(rs, fmt.Sprintf(`{"prefix": %q}`, p))
	}
	if got := s.send(`{"routes": [` + strings.Join(rs, ",") + `]}`); got != "ok" {
		s.t.Fatalf("%s: Set: %s", s.node.Name, got)
	}
}

// stop sends SIGTERM (a planned stop) and waits for the exit.
func (s *speaker) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("%s: no exit 10s after SIGTERM", s.node.Name)
	}
}

// kill is a crash.
func (s *speaker) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// nexthops returns the router's kernel next hops for dst.
func (b *bgpLab) nexthops(dst string) []string { return b.router.Nexthops(dst) }

func sameSet(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// waitHops waits until the router's next hops for dst are exactly want,
// and returns how long it took.
func (b *bgpLab) waitHops(dst string, d time.Duration, want ...string) time.Duration {
	b.t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		got := b.nexthops(dst)
		if sameSet(got, want...) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("router's next hops for %s: %v after %v, want %v", dst, got, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLog(t testing.TB, s *speaker, text string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(s.logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line with %q after %v:\n%s", s.node.Name, text, d, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addClient puts a client on a second segment behind the router
// (203.0.113.0/24), with the router forwarding between them.
func (b *bgpLab) addClient() *netlab.Host {
	b.t.Helper()
	ns := b.lab.Prefix + "-c"
	b.lab.Must("ip", "netns", "add", ns)
	b.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	c := &netlab.Host{Name: "c", NS: ns}
	b.lab.Must("ip", "-n", ns, "link", "set", "lo", "up")
	b.lab.Must("ip", "-n", b.router.NS, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", ns)
	b.lab.Must("ip", "-n", b.router.NS, "addr", "add", "203.0.113.1/24", "dev", "eth1")
	b.lab.Must("ip", "-n", b.router.NS, "link", "set", "eth1", "up")
	b.lab.Must("ip", "-n", ns, "addr", "add", "203.0.113.2/24", "dev", "eth0")
	b.lab.Must("ip", "-n", ns, "link", "set", "eth0", "up")
	b.lab.Must("ip", "-n", ns, "route", "add", "default", "via", "203.0.113.1")
	b.router.Sysctl("net.ipv4.ip_forward=1")
	return c
}
