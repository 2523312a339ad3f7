package bfd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Port is where single-hop BFD Control packets go (RFC 5881 §4).
const Port = 3784

// ttl is what single-hop BFD sends with, and the least it accepts
// (GTSM, RFC 5881 §5): a packet that crossed a router is not from the
// peer on the link.
const ttl = 255

// received is one packet read from a listener.
type received struct {
	data []byte
	from netip.Addr
	ttl  int // -1: unknown
}

// listener reads Control packets on Port for one family.
type listener struct {
	conn *net.UDPConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

func listen(v6 bool, port int) (*listener, error) {
	network, addr := "udp4", &net.UDPAddr{IP: net.IPv4zero, Port: port}
	if v6 {
		network, addr = "udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: port}
	}
	c, err := net.ListenUDP(network, addr)
	if err != nil {
		return nil, fmt.Errorf("bfd: listen on %s port %d: %w", network, port, err)
	}
	l := &listener{conn: c}
	if v6 {
		l.p6 = ipv6.NewPacketConn(c)
		err = l.p6.SetControlMessage(ipv6.FlagHopLimit, true)
	} else {
		l.p4 = ipv4.NewPacketConn(c)
		err = l.p4.SetControlMessage(ipv4.FlagTTL, true)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bfd: ask for the TTL of packets: %w", err)
	}
	return l, nil
}

// read returns the next packet, or an error once closed.
func (l *listener) read(buf []byte) (received, error) {
	var n, hops int
	var src net.Addr
	var err error
	if l.p6 != nil {
		var cm *ipv6.ControlMessage
		n, cm, src, err = l.p6.ReadFrom(buf)
		hops = -1
		if cm != nil {
			hops = cm.HopLimit
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = l.p4.ReadFrom(buf)
		hops = -1
		if cm != nil {
			hops = cm.TTL
		}
	}
	if err != nil {
		return received{}, err
	}
	u, _ := src.(*net.UDPAddr)
	if u == nil {
		return received{}, errors.New("bfd: packet from a non-UDP address")
	}
	a, _ := netip.AddrFromSlice(u.IP)
	return received{data: append([]byte(nil), buf[:n]...), from: a.Unmap(), ttl: hops}, nil
}

// sender sends one session's packets from one source port in 49152-65535
// (RFC 5881 §4), with TTL 255.
type sender struct {
	conn *net.UDPConn
	to   *net.UDPAddr
}

// newSender opens the socket for peer, from port if it is free (a session
// handed over from the previous process), else from a random one.
func newSender(peer, source netip.Addr, peerPort, port int, rng *rand.Rand) (*sender, error) {
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	var ip net.IP
	if source.IsValid() {
		ip = source.AsSlice()
	}
	var lastErr error
	for range 20 {
		if port < 49152 || port > 65535 {
			port = 49152 + rng.IntN(65536-49152)
		}
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.EADDRINUSE) {
				port = 0
				continue
			}
			return nil, fmt.Errorf("bfd: source socket for %s: %w", peer, err)
		}
		if peer.Is6() {
			err = ipv6.NewConn(c).SetHopLimit(ttl)
			if err == nil {
				err = ipv6.NewPacketConn(c).SetMulticastHopLimit(ttl)
			}
		} else {
			err = ipv4.NewConn(c).SetTTL(ttl)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("bfd: TTL 255 for %s: %w", peer, err)
		}
		return &sender{conn: c, to: &net.UDPAddr{IP: peer.AsSlice(), Port: peerPort}}, nil
	}
	return nil, fmt.Errorf("bfd: no free source port for %s: %w", peer, lastErr)
}

func (s *sender) send(p Packet) error {
	_, err := s.conn.WriteToUDP(p.Marshal(), s.to)
	return err
}

func (s *sender) close() { s.conn.Close() }

func (s *sender) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }
