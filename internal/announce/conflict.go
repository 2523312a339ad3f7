package announce

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
)

// Address conflict detection (L2.DetectConflicts).
//
// Each claim is in one of three states. Without conflict detection every
// claim is announced at once. With it, a claim starts probing unless this
// node announced the same address on the same interface less than
// recentWindow ago:
//
//	probing ──nothing answers──▶ announced ──foreign claim──▶ conflicted
//	   │                                                        │  ▲
//	   └──────────────answered─────────────────────────────────▶│  │ answered
//	                                                            ▼  │
//	                              quiet for Recheck (or SetPeers) → probe again;
//	                              nothing answers → announced, conflict cleared
//
// Only announced claims are in the owners snapshot, so only they are
// answered. A packet is foreign when it comes from a MAC that is neither
// the interface's own nor one of the peers given to SetPeers (the other lbd
// nodes, which answer for an address during a planned hand-over).
type claimState int

const (
	announced claimState = iota
	probing
	conflicted
)

// recentWindow: an address this node announced (and gave up without a
// conflict) less than this long ago is announced again without a probe, so
// that an address moving back and forth between nodes is not delayed each
// time. A host that took it meanwhile is still noticed by its packets.
const recentWindow = time.Minute

// ConflictReason says how a conflict was found.
type ConflictReason string

const (
	// ProbeAnswered: another host answered this node's ARP probe or
	// duplicate address detection before the address was announced.
	ProbeAnswered ConflictReason = "probe_answered"
	// ForeignClaim: while this node announced the address, another host
	// claimed it (a gratuitous ARP, an ARP packet or a Neighbor
	// Advertisement or Solicitation from the address). This node stopped
	// answering for it.
	ForeignClaim ConflictReason = "foreign_claim"
)

// Conflict is an address that another host on the segment uses. It is not
// announced while the conflict lasts.
type Conflict struct {
	Addr      netip.Addr
	Interface string
	// MAC is the foreign host's hardware address (the latest seen).
	MAC net.HardwareAddr
	// Since is when the conflict was found; LastSeen when the foreign
	// host was last heard.
	Since, LastSeen time.Time
	Reason          ConflictReason
}

// ConflictOptions turns conflict detection on; see L2.DetectConflicts.
type ConflictOptions struct {
	// Probe is l2.conflict_probe.
	Probe config.ConflictProbe
	// OnConflict is called when an address gets into conflict, OnClear
	// when it gets out of it (a clean probe; it is then announced). Either
	// may be nil. They are called one at a time from the announcer's
	// goroutines, without its lock held (they may call Conflicts), and
	// must not block. A conflict on an address that leaves the desired set
	// ends without OnClear.
	OnConflict, OnClear func(Conflict)
}

// ErrStarted is returned by DetectConflicts after the first Set.
var ErrStarted = errors.New("announcer already started")

// DetectConflicts turns on address conflict detection: an address is
// probed (RFC 5227 ARP probe, IPv6 duplicate address detection) before it
// is announced the first time, foreign packets for announced addresses are
// watched, and an address another host uses is not announced. Call it
// before the first Set; without it L2 announces at once and never probes.
func (l *L2) DetectConflicts(o ConflictOptions) error {
	if o.Probe.Count < 1 || o.Probe.Interval <= 0 || o.Probe.Recheck <= 0 {
		return errors.New("conflict detection: probe count, interval and recheck must be positive")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return ErrStarted
	}
	l.detect = true
	l.probe = o.Probe
	l.onConflict, l.onClear = o.OnConflict, o.OnClear
	return nil
}

// SetPeers replaces the hardware addresses of the other lbd nodes. Packets
// from them never count as conflicts: during a planned hand-over the old
// owner still answers while the new one probes and sends its burst. An
// address in conflict with a MAC that is now a peer is probed again at once.
// It may be called at any time, from any goroutine.
func (l *L2) SetPeers(macs []net.HardwareAddr) {
	p := peerSet{}
	for _, m := range macs {
		if len(m) > 0 {
			p[string(m)] = struct{}{}
		}
	}
	l.peers.Store(&p)
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, cf := range l.conflicts {
		if !p.has(cf.MAC) {
			continue
		}
		if c := l.claimOf(k); c != nil {
			signal(c.wake)
		}
	}
}

// Conflicts returns the addresses in conflict now, sorted by address and
// interface, for the status view.
func (l *L2) Conflicts() []Conflict {
	l.mu.Lock()
	out := make([]Conflict, 0, len(l.conflicts))
	for _, cf := range l.conflicts {
		out = append(out, cf.clone())
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Conflict) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return strings.Compare(a.Interface, b.Interface)
	})
	return out
}

func (c Conflict) clone() Conflict {
	c.MAC = slices.Clone(c.MAC)
	return c
}

// peerSet holds the peers' MACs as raw bytes.
type peerSet map[string]struct{}

func (p peerSet) has(mac net.HardwareAddr) bool {
	_, ok := p[string(mac)]
	return ok
}

// claimKey names one claim: an address on an interface.
type claimKey struct {
	iface string
	addr  netip.Addr
}

// claimOf returns the claim for k, or nil. Call with l.mu held.
func (l *L2) claimOf(k claimKey) *claim {
	if lk := l.links[k.iface]; lk != nil {
		return lk.addrs[k.addr]
	}
	return nil
}

// signal sends on a one-slot channel without blocking.
func signal[T any](ch chan T, v ...T) {
	var x T
	if len(v) > 0 {
		x = v[0]
	}
	select {
	case ch <- x:
	default:
	}
}

// observe handles a packet on iface in which the host at mac says it uses
// addr (own is the interface's MAC). The responders call it for every such
// packet, so the common case (an address nobody here watches) takes no
// lock.
func (l *L2) observe(iface string, addr netip.Addr, mac, own net.HardwareAddr) {
	if here, _ := l.watched.Load().lookup(addr, iface); !here {
		return
	}
	if len(mac) == 0 || bytes.Equal(mac, own) || l.peers.Load().has(mac) {
		return
	}
	l.mu.Lock()
	c := l.claimOf(claimKey{iface, addr})
	if c == nil || l.closed {
		l.mu.Unlock()
		return
	}
	var report func()
	switch c.state {
	case probing:
		signal(c.heard, slices.Clone(mac))
	case announced:
		report = l.conflictLocked(c, mac, ForeignClaim)
	case conflicted:
		report = l.conflictLocked(c, mac, ForeignClaim)
		signal(c.seen)
	}
	l.mu.Unlock()
	l.report(report)
}

// conflictLocked puts c in conflict with the host at mac: it stops
// answering for c's address (if it did) and records the conflict. It
// returns the OnConflict call for a new conflict. Call with l.mu held.
func (l *L2) conflictLocked(c *claim, mac net.HardwareAddr, reason ConflictReason) func() {
	wasAnnounced := c.state == announced
	c.state = conflicted
	if wasAnnounced {
		close(c.announcing)
		l.publish()
	}
	k := claimKey{c.link.ifi.Name, c.addr}
	now := l.now()
	if cf := l.conflicts[k]; cf != nil {
		cf.LastSeen = now
		if !bytes.Equal(cf.MAC, mac) {
			cf.MAC = slices.Clone(mac)
			l.log.Warn("address conflict: another host", event.Attr(event.Conflict), "ip", c.addr, "iface", k.iface, "mac", cf.MAC.String(), "reason", reason)
		}
		return nil
	}
	cf := &Conflict{Addr: c.addr, Interface: k.iface, MAC: slices.Clone(mac), Since: now, LastSeen: now, Reason: reason}
	l.conflicts[k] = cf
	l.conflictsTotal.WithLabelValues(family(c.addr)).Inc()
	msg := "address conflict: another host answered the probe; not announcing"
	if reason == ForeignClaim {
		msg = "address conflict: another host claims an announced address; no longer answering"
	}
	l.log.Warn(msg, event.Attr(event.Conflict), "ip", c.addr, "iface", k.iface, "mac", cf.MAC.String(), "reason", reason)
	if l.onConflict == nil {
		return nil
	}
	cp, f := cf.clone(), l.onConflict
	return func() { f(cp) }
}

// announceLocked announces c after a clean probe and clears its conflict,
// if any. It returns the OnClear call. Call with l.mu held.
func (l *L2) announceLocked(c *claim) func() {
	c.state = announced
	c.announcing = make(chan struct{})
	l.publish()
	k := claimKey{c.link.ifi.Name, c.addr}
	cf := l.conflicts[k]
	if cf == nil {
		l.log.Info("announcing", "ip", c.addr, "iface", k.iface, "reason", c.reason)
		return nil
	}
	delete(l.conflicts, k)
	l.log.Info("address conflict cleared: probe unanswered; announcing", event.Attr(event.ConflictClear), "ip", c.addr, "iface", k.iface, "mac", cf.MAC.String())
	if l.onClear == nil {
		return nil
	}
	cp, f := cf.clone(), l.onClear
	return func() { f(cp) }
}

// report runs a callback returned by conflictLocked or announceLocked, one
// at a time.
func (l *L2) report(f func()) {
	if f == nil {
		return
	}
	l.cbMu.Lock()
	defer l.cbMu.Unlock()
	f()
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func newConflictsCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_l2_conflicts_total",
		Help: "Address conflicts found by the L2 announcer: another host on the segment uses an address this node was to announce, by family.",
	}, []string{"family"})
	c.WithLabelValues("ipv4")
	c.WithLabelValues("ipv6")
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}
