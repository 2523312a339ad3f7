package announce

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// probeUntilClear probes for c's address until nothing answers, waiting a
// quiet period between rounds while it is in conflict, and announces it.
// It returns the new announcing channel, or nil when c was withdrawn.
func (c *claim) probeUntilClear(send func() error) chan struct{} {
	l := c.link.l
	for {
		l.mu.Lock()
		st := c.state
		l.mu.Unlock()
		if st == conflicted {
			if !c.waitQuiet() {
				return nil
			}
			// Answers to this round go to heard; the conflict stays
			// recorded until a round is clean.
			l.mu.Lock()
			c.state = probing
			l.mu.Unlock()
		}
		mac, ok := c.probe(send)
		if !ok {
			return nil
		}
		l.mu.Lock()
		select {
		case <-c.stop:
			l.mu.Unlock()
			return nil
		default:
		}
		if mac == nil {
			// An answer to the last probe that came in meanwhile.
			select {
			case mac = <-c.heard:
			default:
			}
		}
		if mac != nil {
			report := l.conflictLocked(c, mac, ProbeAnswered)
			l.mu.Unlock()
			l.report(report)
			continue
		}
		report := l.announceLocked(c)
		ann := c.announcing
		l.mu.Unlock()
		l.report(report)
		return ann
	}
}

// waitQuiet waits until the foreign host has been quiet for Recheck, or
// SetPeers made its MAC a peer. It returns false when c was withdrawn.
func (c *claim) waitQuiet() bool {
	l := c.link.l
	for {
		select {
		case <-c.stop:
			return false
		case <-c.wake:
			return true
		case <-c.seen:
			// Heard again: the quiet period starts over.
		case <-l.clock.After(l.probe.Recheck):
			return true
		}
	}
}

// probe sends Count probes Interval apart and waits Interval after the
// last. It returns the MAC of the first foreign host that answered (nil:
// none did), and false when c was withdrawn meanwhile.
func (c *claim) probe(send func() error) (net.HardwareAddr, bool) {
	l := c.link.l
	select {
	case <-c.heard: // a stale answer from an earlier round
	default:
	}
	for range l.probe.Count {
		if err := send(); err != nil {
			select {
			case <-c.stop:
				return nil, false
			default:
			}
			l.log.Warn("conflict probe failed", "ip", c.addr, "iface", c.link.ifi.Name, "err", err)
		}
		select {
		case <-c.stop:
			return nil, false
		case mac := <-c.heard:
			return mac, true
		case <-l.clock.After(l.probe.Interval):
		}
	}
	return nil, true
}

// arpProbe is an RFC 5227 ARP probe for addr from the interface at mac: a
// request with sender IP 0.0.0.0 and target hardware address zero, so that
// no host updates its cache from it. A host that has addr answers with a
// reply to mac.
func arpProbe(mac net.HardwareAddr, addr netip.Addr) (*arp.Packet, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, netip.IPv4Unspecified(), ethernet.Broadcast, addr)
	if err != nil {
		return nil, err
	}
	p.TargetHardwareAddr = make(net.HardwareAddr, len(mac))
	return p, nil
}

// ipv6Unspecified is ::, the source of duplicate address detection.
var ipv6Unspecified = netip.IPv6Unspecified()

// dadFrame is a duplicate address detection probe for addr (RFC 4862
// §5.4.2) from the interface at mac, as an Ethernet frame: a Neighbor
// Solicitation from :: to addr's solicited-node group, hop limit 255,
// without a source link-layer option. A host that has addr answers with a
// Neighbor Advertisement to all-nodes.
//
// It is built whole and sent on a packet socket because the kernel picks a
// source address for an ICMPv6 socket and never sends from ::.
func dadFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return nil, err
	}
	icmp, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: addr}, ipv6Unspecified, group)
	if err != nil {
		return nil, err
	}
	ip := make([]byte, 40, 40+len(icmp))
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = 58 // ICMPv6
	ip[7] = ndp.HopLimit
	// The source, ::, stays zero.
	g := group.As16()
	copy(ip[24:40], g[:])
	f := ethernet.Frame{
		Destination: multicastMAC(group),
		Source:      mac,
		EtherType:   ethernet.EtherTypeIPv6,
		Payload:     append(ip, icmp...),
	}
	return f.MarshalBinary()
}

// multicastMAC is the Ethernet group address of an IPv6 multicast group
// (RFC 2464 §7): 33:33 and the group's last 32 bits.
func multicastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// sendDAD sends one duplicate address detection probe for addr on ifi, on
// a packet socket opened for it (bound to no protocol, so it receives
// nothing).
func sendDAD(ifi *net.Interface, addr netip.Addr) error {
	b, err := dadFrame(ifi.HardwareAddr, addr)
	if err != nil {
		return err
	}
	pc, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return fmt.Errorf("DAD socket on %s: %w", ifi.Name, err)
	}
	defer pc.Close()
	_, err = pc.WriteTo(b, &packet.Addr{HardwareAddr: net.HardwareAddr(b[:6])})
	return err
}

// arpSender returns who an ARP packet says has which address: its sender
// IP and hardware address. ok is false for frames that are not ARP and for
// probes (sender 0.0.0.0), which claim nothing.
func arpSender(frame []byte) (addr netip.Addr, mac net.HardwareAddr, ok bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return netip.Addr{}, nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return netip.Addr{}, nil, false
	}
	if !p.SenderIP.Is4() || p.SenderIP.IsUnspecified() || len(p.SenderHardwareAddr) != 6 {
		// Found by FuzzARPFrame: a frame with a hardware address length
		// of 0 claimed an address for nobody, which conflict detection
		// took for a foreign host.
		return netip.Addr{}, nil, false
	}
	return p.SenderIP, p.SenderHardwareAddr, true
}

// ndpSender returns who an NDP message says has which address: a Neighbor
// Advertisement's target and target link-layer address, or a Neighbor
// Solicitation's source and source link-layer address. ok is false when
// the message names no hardware address (a duplicate address detection
// probe, a unicast reachability probe) or is something else.
func ndpSender(in nsIn) (addr netip.Addr, mac net.HardwareAddr, ok bool) {
	if in.hopLimit != 0 && in.hopLimit != ndp.HopLimit {
		// Not from the link (RFC 4861 §7.1).
		return netip.Addr{}, nil, false
	}
	var dir ndp.Direction
	switch m := in.msg.(type) {
	case *ndp.NeighborAdvertisement:
		addr, dir = m.TargetAddress, ndp.Target
		mac = linkLayer(m.Options, dir)
	case *ndp.NeighborSolicitation:
		if in.src.IsUnspecified() {
			return netip.Addr{}, nil, false
		}
		addr, dir = in.src, ndp.Source
		mac = linkLayer(m.Options, dir)
	default:
		return netip.Addr{}, nil, false
	}
	if len(mac) != 6 || !addr.Is6() || addr.Is4In6() || addr.IsLinkLocalUnicast() {
		return netip.Addr{}, nil, false
	}
	return addr.WithZone(""), mac, true
}

func linkLayer(opts []ndp.Option, dir ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == dir {
			return lla.Addr
		}
	}
	return nil
}
