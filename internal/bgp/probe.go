package bgp

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"golang.org/x/sys/unix"
)

// probeOpen explains a session that the peer refuses during the OPEN
// exchange. GoBGP drops a NOTIFICATION that arrives before the session
// is established, so the Speaker asks once more itself: it opens its own
// connection (same source, same MD5 password), sends an OPEN like
// GoBGP's, and reads the peer's answer. It returns the NOTIFICATION
// explained, "" if the peer accepted the OPEN (the Speaker then closes
// without a KEEPALIVE, which the peer sees as a dropped connection), or
// an error.
func probeOpen(w session, password string, localASN uint32, routerID netip.Addr) (string, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if w.source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: w.source.AsSlice()}
	}
	if password != "" {
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = setMD5(int(fd), w.addr, password) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", net.JoinHostPort(w.addr.String(), strconv.Itoa(int(w.port))))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))

	as2 := uint16(localASN)
	if localASN > 0xffff {
		as2 = bgp.AS_TRANS
	}
	rf := bgp.RF_IPv4_UC
	if w.addr.Is6() {
		rf = bgp.RF_IPv6_UC
	}
	caps := []bgp.ParameterCapabilityInterface{bgp.NewCapMultiProtocol(rf), bgp.NewCapFourOctetASNumber(localASN)}
	open := bgp.NewBGPOpenMessage(as2, uint16(secs(w.hold)), routerID.String(),
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	b, err := open.Serialize()
	if err != nil {
		return "", err
	}
	if _, err := c.Write(b); err != nil {
		return "", err
	}
	for {
		hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return "", fmt.Errorf("reading the answer to OPEN: %w", err)
		}
		n := int(binary.BigEndian.Uint16(hdr[16:18]))
		if n < bgp.BGP_HEADER_LENGTH || n > 65535 {
			return "", fmt.Errorf("bad message length %d", n)
		}
		body := make([]byte, n-bgp.BGP_HEADER_LENGTH)
		if _, err := io.ReadFull(c, body); err != nil {
			return "", fmt.Errorf("reading the answer to OPEN: %w", err)
		}
		switch hdr[18] {
		case bgp.BGP_MSG_NOTIFICATION:
			if len(body) < 2 {
				return "", fmt.Errorf("short NOTIFICATION")
			}
			return notificationProblem("received from the peer", body[0], body[1], nil), nil
		case bgp.BGP_MSG_KEEPALIVE:
			return "", nil // the peer accepted this OPEN
		}
		// The peer's own OPEN: wait for its verdict on ours.
	}
}

func setMD5(fd int, peer netip.Addr, password string) error {
	var t unix.TCPMD5Sig
	if peer.Is4() {
		t.Addr.Family = unix.AF_INET
		a := peer.As4()
		copy(t.Addr.Data[2:], a[:])
	} else {
		t.Addr.Family = unix.AF_INET6
		a := peer.As16()
		copy(t.Addr.Data[6:], a[:])
	}
	t.Keylen = uint16(copy(t.Key[:], password))
	return unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &t)
}
