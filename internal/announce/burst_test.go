package announce

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// capture runs tcpdump on the client's veth until the returned stop
// function is called, and returns the pcap file's path.
func (l *lab) capture(t *testing.T) (pcap string, stop func()) {
	t.Helper()
	return captureIn(t, l.client, clientIf)
}

// captureIn runs tcpdump on iface in namespace ns (ARP and ICMPv6 only).
func captureIn(t *testing.T, ns, iface string) (pcap string, stop func()) {
	t.Helper()
	c := netlab.StartCapture(t, ns, iface, "arp or icmp6")
	return c.Pcap, c.Stop
}

// countPackets counts the packets in pcap that match filter.
func countPackets(t *testing.T, pcap, filter string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", "-n", "-r", pcap, filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s %q: %v", pcap, filter, err)
	}
	return lines(out)
}

func lines(out []byte) int {
	n := 0
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

// waitPackets waits until pcap, still being written, holds at least n
// packets that match filter.
func waitPackets(t *testing.T, pcap, filter string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A packet half written ends tcpdump with an error: count what
		// it read.
		out, _ := exec.Command("tcpdump", "-n", "-r", pcap, filter).Output()
		if lines(out) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d packets matching %q after 5s, want %d", lines(out), filter, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	// Broadcast ARP frames whose sender address is 192.0.2.10
	// (0xc000020a): the announcement and the gratuitous reply.
	gratuitousARPFilter = "arp and ether dst ff:ff:ff:ff:ff:ff and arp[14:4] = 0xc000020a"
	// Neighbor Advertisements (type 136) to all-nodes.
	unsolicitedNAFilter = "icmp6 and ip6 dst ff02::1 and ip6[40] = 136"
	// The same for 192.0.2.11, and advertisements by their target's last
	// four bytes (2001:db8::10, 2001:db8::11).
	gratuitousARPFilterB = "arp and ether dst ff:ff:ff:ff:ff:ff and arp[14:4] = 0xc000020b"
	unsolicitedNAFilterA = unsolicitedNAFilter + " and ip6[60:4] = 0x10"
	unsolicitedNAFilterB = unsolicitedNAFilter + " and ip6[60:4] = 0x11"
)

// TestL2GratuitousBurst checks the burst on the wire: Count packets of
// each kind when an address is taken, none when the same set is passed
// again, one for another address, a new burst when the address comes
// back.
func TestL2GratuitousBurst(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("network namespace test: tcpdump not installed")
	}
	bin := buildHelper(t)
	l := newLab(t)
	h := startHelper(t, l, bin, "-count", "3", "-interval", "100ms")
	pcap, stop := l.capture(t)

	// Each burst: 3 × (announcement + reply) and 3 advertisements. Every
	// wait is for packets on the wire, never a fixed time.
	h.set(t, "192.0.2.10", "2001:db8::10")
	waitPackets(t, pcap, gratuitousARPFilter, 6)
	waitPackets(t, pcap, unsolicitedNAFilterA, 3)
	// The same set again must send nothing. A burst starts with its first
	// packet at once, so a wrong one for A would be on the wire before
	// the last packet of B's burst, which the next Set starts.
	h.set(t, "192.0.2.10", "2001:db8::10")
	h.set(t, "192.0.2.11", "2001:db8::11")
	waitPackets(t, pcap, gratuitousARPFilterB, 6)
	waitPackets(t, pcap, unsolicitedNAFilterB, 3)
	if n := countPackets(t, pcap, gratuitousARPFilter); n != 6 {
		t.Errorf("gratuitous ARP frames for 192.0.2.10 after a repeated Set = %d, want 6 (one burst)", n)
	}
	if n := countPackets(t, pcap, unsolicitedNAFilterA); n != 3 {
		t.Errorf("advertisements for 2001:db8::10 after a repeated Set = %d, want 3 (one burst)", n)
	}
	// A comes back: a new burst.
	h.set(t)
	h.set(t, "192.0.2.10", "2001:db8::10")
	waitPackets(t, pcap, gratuitousARPFilter, 12)
	waitPackets(t, pcap, unsolicitedNAFilterA, 6)
	stop()
	h.stop(t)
	if n := countPackets(t, pcap, gratuitousARPFilter); n != 12 {
		t.Errorf("gratuitous ARP frames for 192.0.2.10 = %d, want 12 (2 bursts × 3 × 2 forms)", n)
	}
	if n := countPackets(t, pcap, unsolicitedNAFilter); n != 9 {
		t.Errorf("unsolicited advertisements = %d, want 9 (3 bursts × 3)", n)
	}
	if t.Failed() {
		out, _ := exec.Command("tcpdump", "-n", "-e", "-r", pcap).CombinedOutput()
		t.Logf("capture:\n%s", out)
	}
}
