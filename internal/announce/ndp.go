package announce

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// allNodes is ff02::1, where unsolicited advertisements and answers to
// duplicate address detection go.
var allNodes = netip.MustParseAddr("ff02::1")

// nsIn is one received Neighbor Solicitation with what the kernel told us
// about it. dst is invalid and hopLimit 0 when unknown.
type nsIn struct {
	msg      ndp.Message
	src, dst netip.Addr
	hopLimit int
}

// decideNDP decides what to do with one received NDP message on iface
// (whose address is mac): a solicited advertisement, with the Override flag
// and the target link-layer address, for solicitations whose target is
// announced on iface. A duplicate address detection probe (source ::) for
// an announced address is answered to all-nodes, unsolicited (RFC 4861
// §7.2.4), so the prober gives the address up.
func decideNDP(in nsIn, iface string, mac net.HardwareAddr, o owners) (*ndp.NeighborAdvertisement, netip.Addr, dropReason) {
	if in.msg == nil {
		return nil, netip.Addr{}, malformed
	}
	ns, ok := in.msg.(*ndp.NeighborSolicitation)
	if !ok {
		return nil, netip.Addr{}, notRequest
	}
	if in.hopLimit != 0 && in.hopLimit != ndp.HopLimit {
		return nil, netip.Addr{}, malformed
	}
	target := ns.TargetAddress
	if !target.Is6() || target.Is4In6() || target.IsMulticast() {
		return nil, netip.Addr{}, malformed
	}
	var sll net.HardwareAddr
	for _, opt := range ns.Options {
		if lla, ok := opt.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			sll = lla.Addr
		}
	}
	if sll != nil && bytes.Equal(sll, mac) {
		return nil, netip.Addr{}, fromSelf
	}
	dad := in.src.IsUnspecified()
	switch {
	case dad && sll != nil:
		// RFC 4861 §7.1.1: no source link-layer option from ::.
		return nil, netip.Addr{}, malformed
	case dad && in.dst.IsValid() && !in.dst.IsMulticast():
		return nil, netip.Addr{}, malformed
	case !dad && sll == nil && in.dst.IsValid() && in.dst.IsMulticast():
		// RFC 4861 §4.3: a multicast solicitation carries the option.
		return nil, netip.Addr{}, malformed
	}
	here, anywhere := o.lookup(target.WithZone(""), iface)
	switch {
	case here:
	case anywhere:
		return nil, netip.Addr{}, wrongInterface
	default:
		return nil, netip.Addr{}, notOwned
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     !dad,
		Override:      true,
		TargetAddress: target.WithZone(""),
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	if dad {
		return na, allNodes, answer
	}
	// A unicast reachability probe may omit the source link-layer option;
	// the answer goes to the source address all the same.
	return na, in.src, answer
}

// unsolicitedNA announces that addr is at mac, overriding caches.
func unsolicitedNA(mac net.HardwareAddr, addr netip.Addr) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
}

// ndpConn is the ICMPv6 socket of one interface and the solicited-node
// groups it has joined, counted: several addresses can share one group.
// Only the owning link touches groups.
type ndpConn struct {
	ifi    *net.Interface
	pc     *ipv6.PacketConn
	groups map[netip.Addr]int
	closed atomic.Bool
}

// listenNDP opens the ICMPv6 socket of ifi. It receives solicitations,
// and advertisements too when withNA (for conflict detection).
//
// The socket has IPV6_FREEBIND set, so that send can give each
// advertisement the announced address as its IPv6 source although no
// interface has it (the kernel otherwise rejects a foreign IPV6_PKTINFO
// source with EINVAL). Tools such as ndisc6 take only an advertisement
// whose source is the target address as the answer; the kernel's own
// advertisements for its addresses come from them too. FREEBIND is this
// socket's option: it needs no capability and changes no sysctl.
func listenNDP(ifi *net.Interface, withNA bool) (*ndpConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("IPV6_FREEBIND: %w", serr)
		}
		return nil
	}}
	// Bound to ::, not the link-local address, so that unicast probes for
	// an announced address reach this socket too (when the address is
	// local, e.g. on kube-ipvs0 or a local route).
	c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("NDP socket on %s: %w", ifi.Name, err)
	}
	pc := ipv6.NewPacketConn(c)
	fail := func(what string, err error) (*ndpConn, error) {
		pc.Close()
		return nil, fmt.Errorf("NDP socket on %s: %s: %w", ifi.Name, what, err)
	}
	// RFC 4861: hop limit 255 on everything sent. The kernel computes
	// the ICMPv6 checksum of a raw ICMPv6 socket itself.
	if err := pc.SetHopLimit(ndp.HopLimit); err != nil {
		return fail("hop limit", err)
	}
	if err := pc.SetMulticastHopLimit(ndp.HopLimit); err != nil {
		return fail("multicast hop limit", err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	if withNA {
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	}
	if err := pc.SetICMPFilter(&f); err != nil {
		return fail("ICMPv6 filter", err)
	}
	if err := pc.SetControlMessage(ipv6.FlagDst|ipv6.FlagHopLimit|ipv6.FlagInterface, true); err != nil {
		return fail("control messages", err)
	}
	return &ndpConn{ifi: ifi, pc: pc, groups: map[netip.Addr]int{}}, nil
}

// join joins the solicited-node group of addr.
func (c *ndpConn) join(addr netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	if c.groups[g] == 0 {
		if err := c.pc.JoinGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
			return fmt.Errorf("join %s: %w", g, err)
		}
	}
	c.groups[g]++
	return nil
}

// leave leaves the solicited-node group of addr once no announced address
// needs it.
func (c *ndpConn) leave(addr netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	if c.groups[g]--; c.groups[g] > 0 {
		return nil
	}
	delete(c.groups, g)
	if err := c.pc.LeaveGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
		return fmt.Errorf("leave %s: %w", g, err)
	}
	return nil
}

// read returns the next solicitation or advertisement received on this
// interface.
func (c *ndpConn) read() (nsIn, error) {
	// Every message is kept, including those from :: (duplicate address
	// detection probes), which ndp.Conn.ReadFrom would drop.
	b := make([]byte, max(c.ifi.MTU, 1280))
	for {
		n, cm, from, err := c.pc.ReadFrom(b)
		if err != nil {
			return nsIn{}, err
		}
		m, err := ndp.ParseMessage(b[:n])
		if err != nil {
			m = nil // decideNDP counts it
		}
		var src netip.Addr
		if ip, ok := from.(*net.IPAddr); ok {
			src, _ = netip.AddrFromSlice(ip.IP)
		}
		in := nsIn{msg: m, src: src.Unmap()}
		if cm != nil {
			if cm.IfIndex != 0 && cm.IfIndex != c.ifi.Index {
				// The socket is bound to ::, so it sees every interface.
				continue
			}
			in.hopLimit = cm.HopLimit
			if d, ok := netip.AddrFromSlice(cm.Dst); ok {
				in.dst = d
			}
		}
		return in, nil
	}
}

// send sends na to dst on the interface, from na's target address (see
// listenNDP), hop limit 255.
func (c *ndpConn) send(na *ndp.NeighborAdvertisement, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(na)
	if err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{
		HopLimit: ndp.HopLimit,
		Src:      na.TargetAddress.WithZone("").AsSlice(),
		IfIndex:  c.ifi.Index,
	}
	_, err = c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.WithZone("").AsSlice(), Zone: c.ifi.Name})
	return err
}

func (c *ndpConn) close() error {
	c.closed.Store(true)
	return c.pc.Close()
}
