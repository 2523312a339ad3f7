package announce

import (
	"errors"
	"net"
	"time"
)

// serveARP answers ARP requests on one interface until its socket closes,
// and passes every packet that claims an address to observe.
func (l *L2) serveARP(iface string, c *arpConn) {
	buf := make([]byte, 1600)
	for {
		n, _, err := c.pc.ReadFrom(buf)
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("ARP read failed", "iface", iface, "err", err)
			l.pause()
			continue
		}
		if addr, mac, ok := arpSender(buf[:n]); ok {
			l.observe(iface, addr, mac, c.ifi.HardwareAddr)
		}
		reply, reason := decideARP(buf[:n], iface, c.ifi.HardwareAddr, *l.owners.Load())
		if reason != answer {
			l.dropped.WithLabelValues(reason.String()).Inc()
			continue
		}
		if err := c.send(reply, reply.TargetHardwareAddr); err != nil {
			l.log.Warn("ARP reply failed", "ip", reply.SenderIP, "iface", iface, "err", err)
			continue
		}
		l.log.Debug("ARP reply", "ip", reply.SenderIP, "iface", iface, "peer", reply.TargetIP)
	}
}

// serveNDP answers Neighbor Solicitations on one interface until its socket
// closes.
func (l *L2) serveNDP(iface string, c *ndpConn) {
	for {
		in, err := c.read()
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("NDP read failed", "iface", iface, "err", err)
			l.pause()
			continue
		}
		if addr, mac, ok := ndpSender(in); ok {
			l.observe(iface, addr, mac, c.ifi.HardwareAddr)
		}
		na, dst, reason := decideNDP(in, iface, c.ifi.HardwareAddr, *l.owners.Load())
		if reason != answer {
			l.dropped.WithLabelValues(reason.String()).Inc()
			continue
		}
		if err := c.send(na, dst); err != nil {
			l.log.Warn("NDP advertisement failed", "ip", na.TargetAddress, "iface", iface, "err", err)
			continue
		}
		l.log.Debug("NDP advertisement", "ip", na.TargetAddress, "iface", iface, "peer", in.src)
	}
}

// pause waits a little after a read error, so that a socket that keeps
// failing does not spin.
func (l *L2) pause() { <-l.clock.After(100 * time.Millisecond) }
