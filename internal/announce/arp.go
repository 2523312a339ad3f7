package announce

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// etherTypeARP is the EtherType of ARP, for the packet socket.
const etherTypeARP = 0x0806

// decideARP decides what to do with one received Ethernet frame on the
// interface iface whose address is mac. It answers only ARP requests whose
// target is announced on iface; the reply carries mac. ARP probes (sender
// 0.0.0.0, RFC 5227) for an announced address are answered too, so that a
// host probing for the address sees it is in use.
func decideARP(frame []byte, iface string, mac net.HardwareAddr, o owners) (*arp.Packet, dropReason) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, malformed
	}
	var req arp.Packet
	if err := req.UnmarshalBinary(f.Payload); err != nil {
		return nil, malformed
	}
	if req.Operation != arp.OperationRequest {
		return nil, notRequest
	}
	if len(req.SenderHardwareAddr) != 6 || len(f.Source) != 6 {
		return nil, malformed // not Ethernet: nobody to answer
	}
	if bytes.Equal(f.Source, mac) || bytes.Equal(req.SenderHardwareAddr, mac) {
		return nil, fromSelf
	}
	if !req.TargetIP.Is4() || !req.SenderIP.Is4() {
		return nil, malformed
	}
	here, anywhere := o.lookup(req.TargetIP, iface)
	switch {
	case here:
	case anywhere:
		return nil, wrongInterface
	default:
		return nil, notOwned
	}
	if req.SenderIP == req.TargetIP {
		// Someone else's gratuitous ARP for our address: a conflict that
		// an answer cannot resolve, not a question.
		return nil, notRequest
	}
	reply, err := arp.NewPacket(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil, malformed
	}
	return reply, answer
}

// gratuitousARP returns the two unsolicited forms announcing that addr is
// at mac: an ARP announcement (a request for addr from addr, RFC 5227) and
// a broadcast reply, since hosts differ in which one they heed.
func gratuitousARP(mac net.HardwareAddr, addr netip.Addr) ([]*arp.Packet, error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, addr, ethernet.Broadcast, addr)
	if err != nil {
		return nil, err
	}
	// An announcement's target hardware address is zero (RFC 5227 §2.3).
	req.TargetHardwareAddr = make(net.HardwareAddr, len(mac))
	rep, err := arp.NewPacket(arp.OperationReply, mac, addr, ethernet.Broadcast, addr)
	if err != nil {
		return nil, err
	}
	return []*arp.Packet{req, rep}, nil
}

// arpConn is the packet socket of one interface. net.IP and raw frames stop
// here.
type arpConn struct {
	ifi    *net.Interface
	pc     net.PacketConn
	closed atomic.Bool
}

func listenARP(ifi *net.Interface) (*arpConn, error) {
	pc, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("ARP socket on %s: %w", ifi.Name, err)
	}
	return &arpConn{ifi: ifi, pc: pc}, nil
}

// send writes p in an Ethernet frame to dst.
func (c *arpConn) send(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{Destination: dst, Source: c.ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = c.pc.WriteTo(fb, &packet.Addr{HardwareAddr: dst})
	return err
}

func (c *arpConn) close() error {
	c.closed.Store(true)
	return c.pc.Close()
}
