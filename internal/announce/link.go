package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/lbdproject/lbd/internal/config"
)

// link is one interface with at least one announced address: its sockets,
// opened when the first address of their family arrives, and its claims.
// Only Set and Close (under L2.mu) touch it.
type link struct {
	l     *L2
	ifi   *net.Interface
	arp   *arpConn
	ndp   *ndpConn
	addrs map[netip.Addr]*claim
}

// claim is one announced address on one link.
type claim struct {
	link   *link
	addr   netip.Addr
	reason string
	stop   chan struct{}
}

// add takes addr: it opens the family's socket if needed and, for IPv6,
// joins the solicited-node group. The claim's gratuitous burst is started
// by the caller once the ownership snapshot includes addr.
func (lk *link) add(addr netip.Addr, reason string) (*claim, error) {
	if addr.Is4() {
		if lk.arp == nil {
			c, err := listenARP(lk.ifi)
			if err != nil {
				return nil, err
			}
			lk.arp = c
			lk.l.goroutine(func() { lk.l.serveARP(lk.ifi.Name, c) })
		}
	} else {
		if lk.ndp == nil {
			c, err := listenNDP(lk.ifi)
			if err != nil {
				return nil, err
			}
			lk.ndp = c
			lk.l.goroutine(func() { lk.l.serveNDP(lk.ifi.Name, c) })
		}
		if err := lk.ndp.join(addr); err != nil {
			return nil, err
		}
	}
	c := &claim{link: lk, addr: addr, reason: reason, stop: make(chan struct{})}
	lk.addrs[addr] = c
	return c, nil
}

// remove gives addr up: it stops its gratuitous sends and, for IPv6, leaves
// the solicited-node group. The family's socket is closed with its last
// address.
func (lk *link) remove(addr netip.Addr) error {
	c := lk.addrs[addr]
	delete(lk.addrs, addr)
	close(c.stop)
	lk.l.log.Info("withdrawn", "ip", addr, "iface", lk.ifi.Name, "reason", c.reason)
	var err error
	if addr.Is4() && lk.arp != nil && !lk.has(netip.Addr.Is4) {
		err = lk.arp.close()
		lk.arp = nil
	}
	if addr.Is6() && lk.ndp != nil {
		if lk.has(netip.Addr.Is6) {
			err = lk.ndp.leave(addr)
		} else {
			err = lk.ndp.close()
			lk.ndp = nil
		}
	}
	if err != nil {
		return fmt.Errorf("withdraw %s on %s: %w", addr, lk.ifi.Name, err)
	}
	return nil
}

// has reports whether the link still announces an address of the family.
func (lk *link) has(family func(netip.Addr) bool) bool {
	for a := range lk.addrs {
		if family(a) {
			return true
		}
	}
	return false
}

// close closes the link's sockets, which ends its responders.
func (lk *link) close() error {
	var errs []error
	if lk.arp != nil {
		errs = append(errs, lk.arp.close())
	}
	if lk.ndp != nil {
		errs = append(errs, lk.ndp.close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sockets on %s: %w", lk.ifi.Name, err)
	}
	return nil
}

// start sends the claim's gratuitous burst and refreshes in a goroutine
// that ends when the claim is removed.
func (c *claim) start() {
	l := c.link.l
	// Capture the sockets now: the goroutine must not read link fields
	// that Set may change.
	arpc, ndpc, mac, name := c.link.arp, c.link.ndp, c.link.ifi.HardwareAddr, c.link.ifi.Name
	l.goroutine(func() {
		gratuitousLoop(c.stop, l.clock, l.grat, func() {
			err := sendGratuitous(arpc, ndpc, mac, c.addr)
			select {
			case <-c.stop:
				// Withdrawn meanwhile: the socket may be closed.
			default:
				if err != nil {
					l.log.Warn("gratuitous send failed", "ip", c.addr, "iface", name, "err", err)
				}
			}
		})
	})
}

// gratuitousLoop calls send on the schedule of g until stop is closed or
// the schedule ends.
func gratuitousLoop(stop <-chan struct{}, clock Clock, g config.Gratuitous, send func()) {
	for i := 0; ; i++ {
		d, ok := gratuitousDelay(g.Count, g.Interval, g.Refresh, i)
		if !ok {
			return
		}
		if d > 0 {
			select {
			case <-stop:
				return
			case <-clock.After(d):
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		send()
	}
}

func sendGratuitous(arpc *arpConn, ndpc *ndpConn, mac net.HardwareAddr, addr netip.Addr) error {
	if addr.Is4() {
		ps, err := gratuitousARP(mac, addr)
		if err != nil {
			return err
		}
		var errs []error
		for _, p := range ps {
			errs = append(errs, arpc.send(p, broadcast))
		}
		return errors.Join(errs...)
	}
	return ndpc.send(unsolicitedNA(mac, addr), allNodes)
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
