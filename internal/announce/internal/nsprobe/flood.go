package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// flood sends hostile and careless frames on iface for d, as fast as it
// can: garbage with ARP's EtherType, ARP with wrong lengths, requests and
// gratuitous ARP for other addresses from random MACs, solicitations for
// target with a hop limit that says they crossed a router, and ICMPv6
// neighbour messages of random content with valid checksums (the kernel
// drops the others before any socket sees them), at most rate frames a
// second. It returns how many frames it sent.
func flood(iface string, target netip.Addr, d time.Duration, rate int) (int, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return 0, err
	}
	c, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 2))
	randMAC := func() net.HardwareAddr {
		m := make(net.HardwareAddr, 6)
		binary.BigEndian.PutUint32(m[2:], r.Uint32())
		m[0] = 0x02
		return m
	}
	other := netip.AddrFrom4([4]byte{192, 0, 2, 200})
	src6 := netip.MustParseAddr("2001:db8::66")
	var frames [][]byte
	eth := func(typ ethernet.EtherType, payload []byte) []byte {
		f := ethernet.Frame{Destination: ethernet.Broadcast, Source: randMAC(), EtherType: typ, Payload: payload}
		b, _ := f.MarshalBinary()
		return b
	}
	arpPayload := func(op arp.Operation, ip, tgt netip.Addr) []byte {
		p, _ := arp.NewPacket(op, randMAC(), ip, ethernet.Broadcast, tgt)
		b, _ := p.MarshalBinary()
		return b
	}
	for range 64 {
		junk := make([]byte, r.IntN(80))
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		frames = append(frames, eth(ethernet.EtherTypeARP, junk))
		bad := arpPayload(arp.OperationRequest, other, other)
		bad[4] = byte(r.IntN(3)) // hardware address length 0, 1 or 2
		frames = append(frames, eth(ethernet.EtherTypeARP, bad))
		frames = append(frames, eth(ethernet.EtherTypeARP, arpPayload(arp.OperationRequest, other, netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + r.IntN(50))}))))
		frames = append(frames, eth(ethernet.EtherTypeARP, arpPayload(arp.OperationReply, other, other)))
		ns, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: randMAC()}}})
		frames = append(frames, eth(ethernet.EtherTypeIPv6, ipv6(src6, solicited(target), 64, ns)))
		body := make([]byte, 4+r.IntN(40))
		for i := range body {
			body[i] = byte(r.Uint32())
		}
		body[0] = byte(135 + r.IntN(3)) // NS, NA, redirect
		body[1] = 0
		frames = append(frames, eth(ethernet.EtherTypeIPv6, ipv6(src6, solicited(target), 255, body)))
	}
	n := 0
	to := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	start := time.Now()
	for end := start.Add(d); time.Now().Before(end); {
		for _, f := range frames {
			if _, err := c.WriteTo(f, to); err != nil {
				time.Sleep(time.Millisecond) // the queue is full: let it drain
				continue
			}
			n++
		}
		// Keep to the rate: sleep until the frames sent are due.
		if ahead := time.Duration(n)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return n, nil
}

// solicited is target's solicited-node multicast address.
func solicited(target netip.Addr) netip.Addr {
	b := target.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// ipv6 wraps an ICMPv6 message in an IPv6 header, with the checksum set.
func ipv6(src, dst netip.Addr, hop byte, icmp []byte) []byte {
	icmp = append([]byte(nil), icmp...)
	icmp[2], icmp[3] = 0, 0
	s, d := src.As16(), dst.As16()
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	add([]byte{0, 0, byte(len(icmp) >> 8), byte(len(icmp)), 0, 0, 0, 58})
	add(icmp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(icmp[2:], ^uint16(sum))
	h := make([]byte, 40, 40+len(icmp))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(icmp)))
	h[6], h[7] = 58, hop
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, icmp...)
}
