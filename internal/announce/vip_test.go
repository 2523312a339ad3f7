package announce

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vipAddr is one address as `ip -j addr show` reports it.
type vipAddr struct {
	Local     string `json:"local"`
	Prefixlen int    `json:"prefixlen"`
	Valid     uint32 `json:"valid_life_time"`
	Preferred uint32 `json:"preferred_life_time"`
	Tentative bool   `json:"tentative"`
}

// nodeAddr returns the node's address local on the veth, or nil.
func (l *lab) nodeAddr(t *testing.T, local string) *vipAddr {
	t.Helper()
	var links []struct {
		AddrInfo []vipAddr `json:"addr_info"`
	}
	out := must(t, "ip", "-n", l.node, "-j", "addr", "show", "dev", nodeIf)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j addr show: %v\n%s", err, out)
	}
	for _, a := range links[0].AddrInfo {
		if a.Local == local {
			return &a
		}
	}
	return nil
}

// wantVIP fails unless local is on the node as a host address with a
// finite lifetime of at most max seconds, and not tentative.
func (l *lab) wantVIP(t *testing.T, local string, max uint32) {
	t.Helper()
	a := l.nodeAddr(t, local)
	if a == nil {
		t.Fatalf("%s not on %s", local, nodeIf)
	}
	bits := 32
	if strings.Contains(local, ":") {
		bits = 128
	}
	if a.Prefixlen != bits || a.Valid == 0 || a.Valid > max || a.Preferred > max || a.Tentative {
		t.Errorf("%s on %s: %+v, want /%d, lifetimes in (0, %d], not tentative", local, nodeIf, *a, bits, max)
	}
}

func (l *lab) wantNoVIP(t *testing.T, local string) {
	t.Helper()
	if a := l.nodeAddr(t, local); a != nil {
		t.Errorf("%s still on %s: %+v", local, nodeIf, *a)
	}
}

// line sends one raw command to the helper and returns its answer.
func (h *helper) line(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(h.stdin, cmd); err != nil {
		t.Fatal(err)
	}
	if !h.out.Scan() {
		t.Fatalf("helper exited: %v", h.out.Err())
	}
	return h.out.Text()
}

func TestVIPInNamespace(t *testing.T) {
	needLab(t)
	bin := buildTool(t, "viphelper")
	l := newLab(t)
	// DAD on for the veth, so only IFA_F_NODAD keeps the IPv6 VIP from
	// being tentative.
	must(t, "ip", "netns", "exec", l.node, "sysctl", "-q", "-w", "net.ipv6.conf."+nodeIf+".accept_dad=1")
	h := startHelper(t, l, bin, "-lifetime", "30s")

	h.set(t, "192.0.2.100", "2001:db8::100")
	l.wantVIP(t, "192.0.2.100", 30)
	l.wantVIP(t, "2001:db8::100", 30)

	// A renewal brings the lifetime back up.
	time.Sleep(2 * time.Second)
	if a := l.nodeAddr(t, "192.0.2.100"); a == nil || a.Valid > 29 {
		t.Fatalf("192.0.2.100 after 2s: %+v, want valid_life_time <= 29", a)
	}
	h.set(t, "192.0.2.100", "2001:db8::100")
	if a := l.nodeAddr(t, "192.0.2.100"); a == nil || a.Valid < 29 {
		t.Errorf("192.0.2.100 after renewal: %+v, want valid_life_time 29 or 30", a)
	}

	// Removed by hand: the next Set adds it again.
	must(t, "ip", "-n", l.node, "addr", "del", "2001:db8::100/128", "dev", nodeIf)
	l.wantNoVIP(t, "2001:db8::100")
	h.set(t, "192.0.2.100", "2001:db8::100")
	l.wantVIP(t, "2001:db8::100", 30)

	// Dropped from the set: removed at once.
	h.set(t, "2001:db8::100")
	l.wantNoVIP(t, "192.0.2.100")
	l.wantVIP(t, "2001:db8::100", 30)
	h.set(t)
	l.wantNoVIP(t, "2001:db8::100")

	// Errors name the address and the interface.
	if got := h.line(t, `[{"addr":"192.0.2.101","iface":"nosuch0"}]`); !strings.Contains(got, "192.0.2.101") || !strings.Contains(got, "nosuch0") {
		t.Errorf("Set on a missing interface: %q, want an error naming the address and interface", got)
	}

	// Close removes everything; the node's own addresses stay.
	h.set(t, "192.0.2.100", "2001:db8::100")
	h.stop(t)
	l.wantNoVIP(t, "192.0.2.100")
	l.wantNoVIP(t, "2001:db8::100")
	if l.nodeAddr(t, "192.0.2.1") == nil || l.nodeAddr(t, "2001:db8::1") == nil {
		t.Errorf("Close removed the node's own addresses")
	}
}

// TestVIPExpiresAfterCrash kills the announcer without Close: the kernel
// removes the addresses when their lifetime runs out.
func TestVIPExpiresAfterCrash(t *testing.T) {
	needLab(t)
	bin := buildTool(t, "viphelper")
	l := newLab(t)
	h := startHelper(t, l, bin, "-lifetime", "2s")
	h.set(t, "192.0.2.100", "2001:db8::100")
	l.wantVIP(t, "192.0.2.100", 2)
	l.wantVIP(t, "2001:db8::100", 2)
	// The process we started, by its PID; ip netns exec execs in place.
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for l.nodeAddr(t, "192.0.2.100") != nil || l.nodeAddr(t, "2001:db8::100") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("VIPs with a 2s lifetime still there 5s after the announcer was killed: %+v %+v",
				l.nodeAddr(t, "192.0.2.100"), l.nodeAddr(t, "2001:db8::100"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestVIPRemoveStale(t *testing.T) {
	needLab(t)
	bin := buildTool(t, "viphelper")
	l := newLab(t)
	// Leftovers of an lbd that was killed, with a long lifetime.
	must(t, "ip", "-n", l.node, "addr", "add", "192.0.2.100/32", "dev", nodeIf, "valid_lft", "300", "preferred_lft", "300")
	must(t, "ip", "-n", l.node, "addr", "add", "2001:db8::100/128", "dev", nodeIf, "valid_lft", "300", "preferred_lft", "300", "nodad")
	h := startHelper(t, l, bin)
	if got := h.line(t, "stale "+nodeIf+" 192.0.2.100 2001:db8::100 192.0.2.102"); got != "ok" {
		t.Fatalf("RemoveStale: %s", got)
	}
	l.wantNoVIP(t, "192.0.2.100")
	l.wantNoVIP(t, "2001:db8::100")
	// Absent addresses and interfaces are not errors.
	if got := h.line(t, "stale "+nodeIf+" 192.0.2.100"); got != "ok" {
		t.Errorf("RemoveStale of an absent address: %s", got)
	}
	if got := h.line(t, "stale nosuch0 192.0.2.100"); got != "ok" {
		t.Errorf("RemoveStale on an absent interface: %s", got)
	}
	if l.nodeAddr(t, "192.0.2.1") == nil {
		t.Errorf("RemoveStale removed the node's own address")
	}
	h.stop(t)
}

func TestNewVIPLifetime(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, d := range []time.Duration{0, -time.Second, 999 * time.Millisecond} {
		if _, err := NewVIP(log, d); err == nil {
			t.Errorf("NewVIP(%v) accepted", d)
		}
	}
	v, err := NewVIP(log, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Invalid announcements fail before any netlink call.
	err = v.Set([]Announcement{{Addr: netip.Addr{}, Interface: "eth0"}, {Addr: netip.MustParseAddr("192.0.2.1")}})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Errorf("Set with invalid announcements: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Set(nil); err != ErrClosed {
		t.Errorf("Set after Close: %v, want ErrClosed", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
