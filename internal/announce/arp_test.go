package announce

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

var (
	nodeMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	vip4      = netip.MustParseAddr("192.0.2.10")
	other4    = netip.MustParseAddr("192.0.2.11")
	client4   = netip.MustParseAddr("192.0.2.2")
	testOwn   = owners{
		vip4:                                  {"eth0"},
		netip.MustParseAddr("192.0.2.20"):     {"eth1"},
		netip.MustParseAddr("2001:db8::10"):   {"eth0"},
		netip.MustParseAddr("2001:db8::20"):   {"eth1"},
		netip.MustParseAddr("2001:db8:1::10"): {"eth0", "eth1"},
	}
)

func arpFrame(t testing.TB, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

func TestDecideARP(t *testing.T) {
	zeroMAC := make(net.HardwareAddr, 6)
	ipv4Frame, _ := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: clientMAC, EtherType: ethernet.EtherTypeIPv4, Payload: make([]byte, 46)}).MarshalBinary()
	truncated := arpFrame(t, arp.OperationRequest, clientMAC, client4, zeroMAC, vip4)[:20]

	tests := []struct {
		name   string
		frame  []byte
		iface  string
		want   dropReason
		wantTo netip.Addr
	}{
		{"request for owned", arpFrame(t, arp.OperationRequest, clientMAC, client4, zeroMAC, vip4), "eth0", answer, client4},
		{"probe for owned", arpFrame(t, arp.OperationRequest, clientMAC, netip.IPv4Unspecified(), zeroMAC, vip4), "eth0", answer, netip.IPv4Unspecified()},
		{"request for unowned", arpFrame(t, arp.OperationRequest, clientMAC, client4, zeroMAC, other4), "eth0", notOwned, netip.Addr{}},
		{"owned on another interface", arpFrame(t, arp.OperationRequest, clientMAC, client4, zeroMAC, netip.MustParseAddr("192.0.2.20")), "eth0", wrongInterface, netip.Addr{}},
		{"reply", arpFrame(t, arp.OperationReply, clientMAC, client4, nodeMAC, vip4), "eth0", notRequest, netip.Addr{}},
		{"someone else's gratuitous ARP", arpFrame(t, arp.OperationRequest, clientMAC, vip4, zeroMAC, vip4), "eth0", notRequest, netip.Addr{}},
		{"own request", arpFrame(t, arp.OperationRequest, nodeMAC, vip4, zeroMAC, vip4), "eth0", fromSelf, netip.Addr{}},
		{"not ARP", ipv4Frame, "eth0", malformed, netip.Addr{}},
		{"truncated", truncated, "eth0", malformed, netip.Addr{}},
		{"empty", nil, "eth0", malformed, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, got := decideARP(tt.frame, tt.iface, nodeMAC, testOwn)
			if got != tt.want {
				t.Fatalf("reason = %v, want %v", got, tt.want)
			}
			if got != answer {
				if reply != nil {
					t.Fatalf("reply %+v with reason %v", reply, got)
				}
				return
			}
			if reply.Operation != arp.OperationReply || !bytes.Equal(reply.SenderHardwareAddr, nodeMAC) ||
				reply.SenderIP != vip4 || !bytes.Equal(reply.TargetHardwareAddr, clientMAC) || reply.TargetIP != tt.wantTo {
				t.Fatalf("reply = %+v", reply)
			}
		})
	}
}

func TestGratuitousARP(t *testing.T) {
	ps, err := gratuitousARP(nodeMAC, vip4)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Operation != arp.OperationRequest || ps[1].Operation != arp.OperationReply {
		t.Fatalf("got %+v", ps)
	}
	for _, p := range ps {
		if p.SenderIP != vip4 || p.TargetIP != vip4 || !bytes.Equal(p.SenderHardwareAddr, nodeMAC) {
			t.Errorf("packet %+v does not announce %s at %s", p, vip4, nodeMAC)
		}
	}
	if !bytes.Equal(ps[0].TargetHardwareAddr, make(net.HardwareAddr, 6)) {
		t.Errorf("announcement target MAC = %s, want zero", ps[0].TargetHardwareAddr)
	}
}

func TestGratuitousDelay(t *testing.T) {
	const ms = 1e6
	type step struct {
		d  int64
		ok bool
	}
	tests := []struct {
		name              string
		count             int
		interval, refresh int64
		want              []step
	}{
		{"burst only", 3, 200 * ms, 0, []step{{0, true}, {200 * ms, true}, {200 * ms, true}, {0, false}}},
		{"burst then refresh", 2, 100 * ms, 5000 * ms, []step{{0, true}, {100 * ms, true}, {5000 * ms, true}, {5000 * ms, true}}},
		{"one", 1, 0, 0, []step{{0, true}, {0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, w := range tt.want {
				d, ok := gratuitousDelay(tt.count, durationOf(tt.interval), durationOf(tt.refresh), i)
				if int64(d) != w.d || ok != w.ok {
					t.Errorf("packet %d: (%v, %v), want (%v, %v)", i, d, ok, durationOf(w.d), w.ok)
				}
			}
		})
	}
}

func durationOf(ns int64) time.Duration { return time.Duration(ns) }
