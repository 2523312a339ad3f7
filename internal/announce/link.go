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

// claim is one address to announce on one link. Its state and
// announcing channel change under L2.mu only.
type claim struct {
	link   *link
	addr   netip.Addr
	reason string
	// stop is closed when the claim is withdrawn.
	stop  chan struct{}
	state claimState
	// announcing is closed when the claim stops being announced
	// (withdrawn, or yielded to a foreign host); nil unless announced
	// once.
	announcing chan struct{}
	// heard carries the MAC of a foreign host that answered a probe;
	// seen says a foreign host was heard while in conflict; wake asks
	// for a new probe at once. One slot each, sent without blocking.
	heard chan net.HardwareAddr
	seen  chan struct{}
	wake  chan struct{}
}

// add takes addr: it opens the family's socket if needed and, for IPv6,
// joins the solicited-node group. The claim starts in state st; the
// caller publishes the snapshot and then starts the claim's goroutine.
func (lk *link) add(addr netip.Addr, reason string, st claimState) (*claim, error) {
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
			c, err := listenNDP(lk.ifi, lk.l.detect)
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
	return lk.newClaim(addr, reason, st), nil
}

// newClaim records a claim for addr in state st.
func (lk *link) newClaim(addr netip.Addr, reason string, st claimState) *claim {
	c := &claim{
		link: lk, addr: addr, reason: reason, state: st,
		stop:  make(chan struct{}),
		heard: make(chan net.HardwareAddr, 1),
		seen:  make(chan struct{}, 1),
		wake:  make(chan struct{}, 1),
	}
	if st == announced {
		c.announcing = make(chan struct{})
	}
	lk.addrs[addr] = c
	return c
}

// remove gives addr up: it stops its gratuitous sends and, for IPv6, leaves
// the solicited-node group. The family's socket is closed with its last
// address.
func (lk *link) remove(addr netip.Addr) error {
	c := lk.addrs[addr]
	delete(lk.addrs, addr)
	close(c.stop)
	k := claimKey{lk.ifi.Name, addr}
	switch c.state {
	case announced:
		close(c.announcing)
		lk.l.recent[k] = lk.l.now()
		lk.l.log.Info("withdrawn", "ip", addr, "iface", lk.ifi.Name, "reason", c.reason)
	case probing:
		lk.l.log.Info("withdrawn while probing", "ip", addr, "iface", lk.ifi.Name, "reason", c.reason)
	case conflicted:
		delete(lk.l.conflicts, k)
		lk.l.log.Info("withdrawn while in conflict", "ip", addr, "iface", lk.ifi.Name, "reason", c.reason)
	}
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

// start runs the claim in a goroutine that ends when the claim is
// withdrawn: the probe (when the claim is probing), then the gratuitous
// burst and refreshes while it is announced, and, after a conflict, the
// quiet period and a new probe. Call with L2.mu held.
func (c *claim) start() {
	l := c.link.l
	// Capture the sockets now: the goroutine must not read link fields
	// that Set may change. They stay open while the claim exists.
	arpc, ndpc, ifi := c.link.arp, c.link.ndp, c.link.ifi
	mac := ifi.HardwareAddr
	ann, probeFirst := c.announcing, c.state != announced
	probe := func() error {
		if c.addr.Is4() {
			p, err := arpProbe(mac, c.addr)
			if err != nil {
				return err
			}
			return arpc.send(p, broadcast)
		}
		return sendDAD(ifi, c.addr)
	}
	grat := func() error { return sendGratuitous(arpc, ndpc, mac, c.addr) }
	l.goroutine(func() { c.run(ann, probeFirst, probe, grat) })
}

// run is the claim's goroutine: probe (if probeFirst) until clear, send
// gratuitous packets while announced (ann open), and after a conflict
// start over. It returns when the claim is withdrawn.
func (c *claim) run(ann chan struct{}, probeFirst bool, probe, grat func() error) {
	l := c.link.l
	for {
		if probeFirst {
			if ann = c.probeUntilClear(probe); ann == nil {
				return
			}
		}
		gratuitousLoop(ann, l.clock, l.grat, func() {
			err := grat()
			select {
			case <-ann:
				// Withdrawn or yielded meanwhile: the socket may
				// be closed.
			default:
				if err != nil {
					l.log.Warn("gratuitous send failed", "ip", c.addr, "iface", c.link.ifi.Name, "err", err)
				}
			}
		})
		<-ann
		select {
		case <-c.stop:
			return
		default:
			// Yielded to a foreign host: wait, then probe again.
			probeFirst = true
		}
	}
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
