package agent

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Link is one of this node's interfaces that L2 announcement may use: up,
// not loopback, not point-to-point, with an Ethernet MAC.
type Link struct {
	Name string
	// Carrier is the kernel's operational state (IFF_RUNNING): false when
	// the cable is out or the switch port is down.
	Carrier bool
	// MAC is its hardware address, lower case.
	MAC string
	// Prefixes are the subnets of its addresses.
	Prefixes []netip.Prefix
}

// SystemLinks lists this node's usable links.
func SystemLinks() ([]Link, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&(net.FlagLoopback|net.FlagPointToPoint) != 0 || len(i.HardwareAddr) != 6 {
			continue
		}
		l := Link{Name: i.Name, Carrier: i.Flags&net.FlagRunning != 0, MAC: i.HardwareAddr.String()}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil {
					l.Prefixes = append(l.Prefixes, p.Masked())
				}
			}
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// linkState follows the links between polls: which have a carrier, and
// since when.
type linkState struct {
	links []Link
	// upAt is when a link's carrier last came back (zero: it had one
	// when lbd started).
	upAt map[string]time.Time
}

// update records a new poll; it reports whether anything changed.
func (s *linkState) update(now time.Time, links []Link) bool {
	if s.upAt == nil {
		s.upAt = map[string]time.Time{}
		s.links = links
		return true
	}
	if slices.EqualFunc(s.links, links, sameLink) {
		return false
	}
	for _, l := range links {
		i := slices.IndexFunc(s.links, func(o Link) bool { return o.Name == l.Name })
		if l.Carrier && (i < 0 || !s.links[i].Carrier) {
			s.upAt[l.Name] = now
		}
	}
	s.links = links
	return true
}

func (s *linkState) macs() []string {
	var out []string
	for _, l := range s.links {
		if l.MAC != "" && !slices.Contains(out, l.MAC) {
			out = append(out, l.MAC)
		}
	}
	slices.Sort(out)
	return out
}

func sameLink(a, b Link) bool {
	return a.Name == b.Name && a.Carrier == b.Carrier && a.MAC == b.MAC && slices.Equal(a.Prefixes, b.Prefixes)
}

// subnets maps each link to its subnets.
func (s *linkState) subnets() map[string][]netip.Prefix {
	out := make(map[string][]netip.Prefix, len(s.links))
	for _, l := range s.links {
		out[l.Name] = l.Prefixes
	}
	return out
}

func (s *linkState) names() []string {
	out := make([]string, len(s.links))
	for i, l := range s.links {
		out[i] = l.Name
	}
	return out
}

// suppressed lists the links on which this node must not answer for now:
// no carrier (nobody hears it anyway), or a carrier that came back after
// the last renewal of this node's liveness Lease the agent has seen. A
// node whose cable was out looked dead to the others, who took its
// addresses; it stays silent until its view of the cluster is fresh again,
// so that exactly one node answers when the cable comes back.
func (s *linkState) suppressed(lastRenewSeen time.Time) []string {
	var out []string
	for _, l := range s.links {
		if !l.Carrier || s.upAt[l.Name].After(lastRenewSeen) {
			out = append(out, l.Name)
		}
	}
	return out
}
