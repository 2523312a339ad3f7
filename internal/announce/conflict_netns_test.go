package announce

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// conflictLab is a switch with the announcing node, a client, a foreign
// host that already uses 192.0.2.20 and 2001:db8::20 (its kernel answers
// for them), and a peer lbd node that still answers for 192.0.2.30 and
// 2001:db8::30, as an old owner does during a hand-over.
type conflictLab struct {
	lab                         *netlab.Lab
	node, client, foreign, peer *netlab.Host
}

func newConflictLab(t *testing.T) *conflictLab {
	t.Helper()
	netlab.Need(t, "arping", "ping", "tcpdump")
	lab := netlab.New(t)
	c := &conflictLab{
		lab:     lab,
		node:    lab.AddHost("node", "192.0.2.1/24", "2001:db8::1/64"),
		client:  lab.AddHost("client", "192.0.2.2/24", "2001:db8::2/64"),
		foreign: lab.AddHost("foreign", "192.0.2.3/24", "2001:db8::3/64", "192.0.2.20/24", "2001:db8::20/64"),
		peer:    lab.AddHost("peer", "192.0.2.4/24", "2001:db8::4/64", "192.0.2.30/24", "2001:db8::30/64"),
	}
	lab.WaitReachable(c.client, "2001:db8::1", 5*time.Second)
	return c
}

// arpingAll asks from h for addr and returns every MAC that answered,
// sorted.
func arpingAll(t *testing.T, h *netlab.Host, addr string) []string {
	t.Helper()
	out, _ := h.Run("arping", "-c", "2", "-W", "0.2", "-w", "1", "-i", netlab.Interface, addr)
	var macs []string
	for _, m := range macRE.FindAllString(out, -1) {
		m = strings.ToLower(m)
		if !slices.Contains(macs, m) {
			macs = append(macs, m)
		}
	}
	slices.Sort(macs)
	return macs
}

// resolve6From makes h's kernel resolve addr afresh and returns the MAC it
// learnt, or "".
func resolve6From(h *netlab.Host, addr string) string {
	h.Run("ip", "neigh", "del", addr, "dev", netlab.Interface)
	h.Run("ping", "-6", "-c", "1", "-W", "0.5", addr)
	out, _ := h.Run("ip", "neigh", "show", addr, "dev", netlab.Interface)
	return strings.ToLower(macRE.FindString(out))
}

type seenConflict struct {
	Addr   string `json:"addr"`
	MAC    string `json:"mac"`
	Reason string `json:"reason"`
}

func (h *helper) conflicts(t *testing.T) []seenConflict {
	t.Helper()
	var cs []seenConflict
	if err := json.Unmarshal([]byte(h.command(t, "conflicts")), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitConflicts waits until the helper's conflicts are exactly want.
func (h *helper) waitConflicts(t *testing.T, timeout time.Duration, want ...seenConflict) {
	t.Helper()
	if want == nil {
		want = []seenConflict{}
	}
	deadline := time.Now().Add(timeout)
	for {
		got := h.conflicts(t)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("conflicts after %v:\n got %+v\nwant %+v", timeout, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor retries check until it returns "" or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestL2ConflictInNamespaces: the node is told to announce six addresses.
// 192.0.2.10 and 2001:db8::10 are free: announced after the probe.
// 192.0.2.20 and 2001:db8::20 are used by a foreign host: reported, never
// answered. 192.0.2.30 and 2001:db8::30 are answered by a known peer: not
// a conflict, announced. Then the foreign host claims the announced
// addresses (gratuitous ARP, unsolicited NA): the node reports it and
// stops answering, and takes them back once the foreign host has been
// quiet for the recheck period. Last, making the foreign host a peer
// clears its conflicts at once.
func TestL2ConflictInNamespaces(t *testing.T) {
	helperBin, probeBin := buildHelper(t), buildTool(t, "nsprobe")
	c := newConflictLab(t)
	pcap, stopCapture := captureIn(t, c.client.NS, netlab.Interface)
	h := startHelperCmd(t, c.node.Command(helperBin, "-detect", "-count", "2", "-interval", "50ms",
		"-probe-count", "3", "-probe-interval", "100ms", "-recheck", "3s"), netlab.Interface)
	if got := h.command(t, "peers "+c.peer.MAC); got != "ok" {
		t.Fatalf("peers: %s", got)
	}

	h.set(t, "192.0.2.10", "2001:db8::10", "192.0.2.20", "2001:db8::20", "192.0.2.30", "2001:db8::30")
	probed := []seenConflict{
		{"192.0.2.20", c.foreign.MAC, "probe_answered"},
		{"2001:db8::20", c.foreign.MAC, "probe_answered"},
	}
	h.waitConflicts(t, 3*time.Second, probed...)

	waitFor(t, 3*time.Second, func() string {
		if got := arpingAll(t, c.client, "192.0.2.10"); !slices.Equal(got, []string{c.node.MAC}) {
			return fmt.Sprintf("192.0.2.10 answered by %v, want only the node %s", got, c.node.MAC)
		}
		return ""
	})
	if got := resolve6From(c.client, "2001:db8::10"); got != c.node.MAC {
		t.Errorf("2001:db8::10 resolved to %q, want the node %s", got, c.node.MAC)
	}
	if got, want := arpingAll(t, c.client, "192.0.2.30"), sortedOf(c.node.MAC, c.peer.MAC); !slices.Equal(got, want) {
		t.Errorf("192.0.2.30 answered by %v, want the node and the peer %v", got, want)
	}
	if got := arpingAll(t, c.client, "192.0.2.20"); !slices.Equal(got, []string{c.foreign.MAC}) {
		t.Errorf("192.0.2.20 answered by %v, want only the foreign host %s", got, c.foreign.MAC)
	}
	// Nothing else became a conflict meanwhile (the peer's answers).
	h.waitConflicts(t, 0, probed...)

	// The foreign host claims the announced addresses.
	// arping exits 1: nobody answers a gratuitous ARP.
	c.foreign.Run("arping", "-U", "-c", "1", "-w", "0", "-i", netlab.Interface, "-S", "192.0.2.10", "192.0.2.10")
	c.foreign.Must(probeBin, "-advertise", "-i", netlab.Interface, "-target", "2001:db8::10")
	claimed := []seenConflict{
		{"192.0.2.10", c.foreign.MAC, "foreign_claim"},
		{"192.0.2.20", c.foreign.MAC, "probe_answered"},
		{"2001:db8::10", c.foreign.MAC, "foreign_claim"},
		{"2001:db8::20", c.foreign.MAC, "probe_answered"},
	}
	h.waitConflicts(t, 2*time.Second, claimed...)
	if got := arpingAll(t, c.client, "192.0.2.10"); len(got) != 0 {
		t.Errorf("192.0.2.10 in conflict answered by %v, want no one (the foreign host claimed it without having it)", got)
	}

	// Quiet for the recheck period (3s), then a clean probe: announced
	// again. 192.0.2.20 is probed again too, and still answered.
	h.waitConflicts(t, 6*time.Second, probed...)
	waitFor(t, 2*time.Second, func() string {
		if got := arpingAll(t, c.client, "192.0.2.10"); !slices.Equal(got, []string{c.node.MAC}) {
			return fmt.Sprintf("192.0.2.10 after the conflict answered by %v, want the node %s", got, c.node.MAC)
		}
		return ""
	})
	if got := resolve6From(c.client, "2001:db8::10"); got != c.node.MAC {
		t.Errorf("2001:db8::10 after the conflict resolved to %q, want the node %s", got, c.node.MAC)
	}
	stopCapture()

	// The node never sent anything for the foreign host's addresses.
	nodeSrc := "ether src " + c.node.MAC
	if n := countPackets(t, pcap, nodeSrc+" and arp and arp[14:4] = 0xc0000214"); n != 0 {
		t.Errorf("the node sent %d ARP frames for 192.0.2.20", n)
	}
	if n := countPackets(t, pcap, nodeSrc+" and arp and arp[14:4] = 0xc000020a"); n == 0 {
		t.Error("the node sent no ARP frame for 192.0.2.10: the filter is broken")
	}
	// ip6[40] is the ICMPv6 type (136: advertisement), ip6[60:4] the last
	// four bytes of its target.
	if n := countPackets(t, pcap, nodeSrc+" and icmp6 and ip6[40] = 136 and ip6[60:4] = 0x20"); n != 0 {
		t.Errorf("the node sent %d advertisements for 2001:db8::20", n)
	}
	if n := countPackets(t, pcap, nodeSrc+" and icmp6 and ip6[40] = 136 and ip6[60:4] = 0x10"); n == 0 {
		t.Error("the node sent no advertisement for 2001:db8::10: the filter is broken")
	}

	// The foreign host turns out to be an lbd node: its conflicts clear
	// at once, without waiting for the recheck period.
	if got := h.command(t, "peers "+c.peer.MAC+","+c.foreign.MAC); got != "ok" {
		t.Fatalf("peers: %s", got)
	}
	h.waitConflicts(t, 2*time.Second)
	if got, want := arpingAll(t, c.client, "192.0.2.20"), sortedOf(c.node.MAC, c.foreign.MAC); !slices.Equal(got, want) {
		t.Errorf("192.0.2.20 answered by %v, want %v", got, want)
	}
	h.stop(t)
}

func sortedOf(s ...string) []string {
	slices.Sort(s)
	return s
}
