package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// FuzzARPFrame feeds arbitrary frames to what the responder does with
// every frame it reads: arpSender (conflict detection) and decideARP
// (answer or drop). Neither may panic; an answer must be an ARP reply
// from this node's MAC for an address announced on this interface, to the
// asker, and must marshal.
func FuzzARPFrame(f *testing.F) {
	zero := make([]byte, 6)
	for _, seed := range [][]byte{
		arpFrame(f, arp.OperationRequest, clientMAC, client4, zero, vip4),
		arpFrame(f, arp.OperationRequest, clientMAC, netip.IPv4Unspecified(), zero, vip4),
		arpFrame(f, arp.OperationReply, clientMAC, vip4, nodeMAC, client4),
		arpFrame(f, arp.OperationRequest, clientMAC, vip4, zero, vip4),
		arpFrame(f, arp.OperationRequest, nodeMAC, client4, zero, vip4),
		arpFrame(f, arp.OperationRequest, clientMAC, client4, zero, other4),
		{},
		make([]byte, 14),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if addr, mac, ok := arpSender(frame); ok && (!addr.Is4() || addr.IsUnspecified() || len(mac) == 0) {
			t.Errorf("arpSender = %s %s", addr, mac)
		}
		reply, reason := decideARP(frame, "eth0", nodeMAC, testOwn)
		if reason != answer {
			if reply != nil {
				t.Errorf("a reply with reason %s", reason)
			}
			return
		}
		if reply.Operation != arp.OperationReply || !bytes.Equal(reply.SenderHardwareAddr, nodeMAC) {
			t.Errorf("answer %+v is not a reply from this node", reply)
		}
		if here, _ := testOwn.lookup(reply.SenderIP, "eth0"); !here {
			t.Errorf("answered for %s, not announced on eth0", reply.SenderIP)
		}
		if _, err := reply.MarshalBinary(); err != nil {
			t.Errorf("the answer does not marshal: %v", err)
		}
	})
}

// FuzzNDPMessage does the same for ICMPv6: arbitrary bytes parsed as the
// responder parses them, with arbitrary source, destination and hop limit,
// through ndpSender and decideNDP. An answer must be an advertisement with
// Override and this node's MAC as target link-layer address, for an
// address announced on this interface, from a hop-limit-255 message, sent
// to its source or (for duplicate address detection) to all nodes.
func FuzzNDPMessage(f *testing.F) {
	add := func(m ndp.Message, src, dst string, hop int) {
		b, err := ndp.MarshalMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		f.Add(b, s.AsSlice(), d.AsSlice(), hop)
	}
	add(ns("2001:db8::10", clientMAC...), "2001:db8::2", "ff02::1:ff00:10", 255)
	add(ns("2001:db8::10"), "::", "ff02::1:ff00:10", 255)
	add(ns("2001:db8::10"), "2001:db8::2", "2001:db8::10", 255)
	add(ns("2001:db8::20", clientMAC...), "2001:db8::2", "ff02::1:ff00:20", 64)
	add(unsolicitedNA(clientMAC, netip.MustParseAddr("2001:db8::10")), "2001:db8::10", "ff02::1", 255)
	f.Fuzz(func(t *testing.T, msg, src, dst []byte, hop int) {
		m, err := ndp.ParseMessage(msg)
		if err != nil {
			m = nil // as ndpConn.read does
		}
		in := nsIn{msg: m, hopLimit: hop}
		if a, ok := netip.AddrFromSlice(src); ok {
			in.src = a.Unmap()
		}
		if a, ok := netip.AddrFromSlice(dst); ok {
			in.dst = a
		}
		if addr, mac, ok := ndpSender(in); ok && (!addr.Is6() || len(mac) == 0) {
			t.Errorf("ndpSender = %s %s", addr, mac)
		}
		na, to, reason := decideNDP(in, "eth0", nodeMAC, testOwn)
		if reason != answer {
			if na != nil {
				t.Errorf("an advertisement with reason %s", reason)
			}
			return
		}
		if hop != 0 && hop != ndp.HopLimit {
			t.Errorf("answered a message with hop limit %d", hop)
		}
		if here, _ := testOwn.lookup(na.TargetAddress, "eth0"); !here || !na.Override {
			t.Errorf("advertised %s (override %v), not announced on eth0", na.TargetAddress, na.Override)
		}
		if len(na.Options) != 1 || !bytes.Equal(na.Options[0].(*ndp.LinkLayerAddress).Addr, nodeMAC) {
			t.Errorf("options %v", na.Options)
		}
		if to != in.src && to != allNodes {
			t.Errorf("sent to %s, neither the source %s nor all nodes", to, in.src)
		}
		if _, err := ndp.MarshalMessage(na); err != nil {
			t.Errorf("the advertisement does not marshal: %v", err)
		}
	})
}
