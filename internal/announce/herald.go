package announce

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"

	"github.com/lbdproject/lbd/internal/config"
)

// Herald sends gratuitous ARP (IPv4) and unsolicited Neighbor
// Advertisements (IPv6) for addresses that the kernel itself owns and
// answers for, such as the control-plane VIP: the burst of its
// config.Gratuitous on Start, then one every Refresh, until Stop. It
// answers no requests; it shares the packet forms and the schedule with L2.
//
// Start and Stop may be called from any goroutine; they are serialised.
type Herald struct {
	log   *slog.Logger
	clock Clock
	grat  config.Gratuitous
	// ifaceByName is net.InterfaceByName; a field so tests can fail it.
	ifaceByName func(string) (*net.Interface, error)

	mu   sync.Mutex
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewHerald builds a Herald; it opens nothing and starts nothing.
func NewHerald(log *slog.Logger, clock Clock, g config.Gratuitous) *Herald {
	return &Herald{log: log, clock: clock, grat: g, ifaceByName: net.InterfaceByName}
}

// Start announces addrs on iface: it sends the first packet for each
// address before it returns (so the caller can time a takeover to it),
// then the rest of the burst and the refreshes in a goroutine. A running
// schedule is stopped first. Addresses it cannot announce are reported;
// the others are announced all the same.
func (h *Herald) Start(iface string, addrs []netip.Addr) error {
	h.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	ifi, err := h.ifaceByName(iface)
	if err != nil {
		return fmt.Errorf("gratuitous ARP/NA for %v on %s: %w", addrs, iface, err)
	}
	s := &heraldSockets{ifi: ifi}
	var errs []error
	var ok []netip.Addr
	for _, a := range addrs {
		if err := s.open(a.Unmap()); err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, a.Unmap())
	}
	if len(ok) == 0 {
		s.close()
		return errors.Join(errs...)
	}
	stop := make(chan struct{})
	h.stop = stop
	// The first packets now; gratuitousLoop's first delay is 0, so skip it.
	first := true
	send := func() {
		for _, a := range ok {
			if err := s.send(a); err != nil {
				select {
				case <-stop:
					return // stopped meanwhile: the sockets are closed
				default:
				}
				h.log.Warn("gratuitous send failed", "ip", a, "iface", iface, "err", err)
			}
		}
	}
	if h.grat.Count > 0 {
		send()
	} else {
		first = false
	}
	h.wg.Go(func() {
		defer s.close()
		gratuitousLoop(stop, h.clock, h.grat, func() {
			if first {
				first = false
				return
			}
			send()
		})
	})
	return errors.Join(errs...)
}

// Stop ends the schedule and closes the sockets, waiting for the goroutine.
// It is idempotent.
func (h *Herald) Stop() {
	h.mu.Lock()
	if h.stop != nil {
		close(h.stop)
		h.stop = nil
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// heraldSockets are send-only sockets on one interface.
type heraldSockets struct {
	ifi *net.Interface
	arp *arpConn
	ndp *ndpConn
}

func (s *heraldSockets) open(a netip.Addr) error {
	if a.Is4() {
		if s.arp != nil {
			return nil
		}
		// Protocol 0: the socket receives nothing, it only sends.
		pc, err := packet.Listen(s.ifi, packet.Raw, 0, nil)
		if err != nil {
			return fmt.Errorf("gratuitous ARP for %s on %s: %w", a, s.ifi.Name, err)
		}
		s.arp = &arpConn{ifi: s.ifi, pc: pc}
		return nil
	}
	if s.ndp != nil {
		return nil
	}
	c, err := listenNDP(s.ifi, false)
	if err != nil {
		return fmt.Errorf("unsolicited NA for %s on %s: %w", a, s.ifi.Name, err)
	}
	// Send only: block every incoming ICMPv6 message.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.pc.SetICMPFilter(&f); err != nil {
		c.close()
		return fmt.Errorf("unsolicited NA for %s on %s: ICMPv6 filter: %w", a, s.ifi.Name, err)
	}
	s.ndp = c
	return nil
}

func (s *heraldSockets) send(a netip.Addr) error {
	return sendGratuitous(s.arp, s.ndp, s.ifi.HardwareAddr, a)
}

func (s *heraldSockets) close() {
	if s.arp != nil {
		_ = s.arp.close()
	}
	if s.ndp != nil {
		_ = s.ndp.close()
	}
}
