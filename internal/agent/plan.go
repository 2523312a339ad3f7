package agent

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/election/owner"
)

// Mode is how an address is made known to the network.
type Mode string

// Modes. An address may have decisions of both modes when both an L2 and a
// BGP advertisement announce its pool.
const (
	ModeL2  Mode = "l2"
	ModeBGP Mode = "bgp"
	// ModeNone: no advertisement announces the address.
	ModeNone Mode = "none"
)

// Reason says why this node announces an address or not. The values are
// fixed: they label lbd_address_decisions and appear in `lbd status`.
type Reason string

// Reasons, in the order Plan checks them.
const (
	// Announcing.
	ReasonOwner    Reason = "owner"    // L2: this node is the owner
	ReasonEligible Reason = "eligible" // BGP: this node advertises it, as every eligible node does
	ReasonHandover Reason = "handover" // L2: another node took it; still answering for the grace

	// Not announcing.
	ReasonNoAdvertisement  Reason = "no_advertisement"   // the address is in no pool an advertisement announces
	ReasonNotAlive         Reason = "not_alive"          // this node's liveness Lease is not seen alive (yet)
	ReasonUnknownNode      Reason = "unknown_node"       // no Node object named node.name
	ReasonExcluded         Reason = "excluded"           // node.kubernetes.io/exclude-from-external-load-balancers
	ReasonCordoned         Reason = "cordoned"           // spec.unschedulable (kubectl cordon / drain)
	ReasonNotSelected      Reason = "not_selected"       // no advertisement's node_selector matches this node
	ReasonInterfaceMissing Reason = "interface_missing"  // L2: none of the advertisement's interfaces is up here
	ReasonNoLocalEndpoints Reason = "no_local_endpoints" // externalTrafficPolicy: Local and no ready endpoint here
	ReasonConflict         Reason = "conflict"           // L2: owner, but another host on the segment uses the address (set by the agent from the announcer's report)
	ReasonOtherOwner       Reason = "other_owner"        // L2: eligible, but another node owns it
	ReasonLinkDown         Reason = "link_down"          // L2: owner, but the interface has no carrier (or just got it back)
	ReasonFenced           Reason = "fenced"             // L2: this node sees half or fewer of the lbd nodes through its peers
)

// Reasons lists every reason, for metrics that show zero values.
var Reasons = []Reason{
	ReasonOwner, ReasonEligible, ReasonHandover,
	ReasonNoAdvertisement, ReasonNotAlive, ReasonUnknownNode, ReasonExcluded, ReasonCordoned,
	ReasonNotSelected, ReasonInterfaceMissing, ReasonNoLocalEndpoints, ReasonConflict,
	ReasonOtherOwner, ReasonLinkDown, ReasonFenced,
}

// Decision is this node's decision for one Service address in one mode.
type Decision struct {
	Service string // namespace/name
	Addr    netip.Addr
	Mode    Mode
	// Advertisements are the names of the advertisements announcing the
	// address's pool in this mode.
	Advertisements []string
	// Owner is the node that announces the address (L2), "" if none can.
	Owner    string
	Announce bool
	// Interfaces are where this node answers (L2, when Announce).
	Interfaces []string
	Reason     Reason
	// FromPeer: this node takes the address over from another node that
	// the Service records as its L2 owner (cluster.Service.L2Owner), so
	// an lbd node answered for it until now and no conflict probe is
	// needed (L2, when Announce).
	FromPeer bool
}

// Member is a node whose lbd is alive.
type Member struct {
	// Since is when its current term of life began.
	Since time.Time
	// Interfaces are the L2 interfaces it published (see
	// PublishedInterfaces); nil: unknown, taken as present.
	Interfaces []string
}

// AnyInterface in a published interface list says the node has at least
// one interface an advertisement without interfaces may use.
const AnyInterface = "*"

// View is everything Plan looks at, gathered by the agent.
type View struct {
	// Services with addresses in their status; Endpoints filled for
	// externalTrafficPolicy: Local.
	Services []cluster.Service
	// Nodes by name.
	Nodes map[string]cluster.Node
	// Alive holds the nodes whose liveness Lease is alive now.
	Alive map[string]Member
	// Interfaces are this node's usable interfaces (up, not loopback,
	// with a MAC), whatever their carrier.
	Interfaces []string
	// Subnets are the subnets of each interface's addresses.
	Subnets map[string][]netip.Prefix
}

// Plan decides, for every address of every Service in v, whether self
// announces it and why. It is pure: the same arguments give the same
// decisions, on every node, which is what lets every node agree on the
// owner of each L2 address without a per-Service Lease.
//
// Eligible nodes for an address are alive, known, not excluded, not
// cordoned, selected by one of the address's advertisements (and, for L2,
// with one of its interfaces), and for externalTrafficPolicy: Local they
// have an endpoint. In BGP mode every eligible node announces; in L2 mode
// owner.Choose picks one, keyed by the Service so that both addresses of
// a dual-stack Service stay on one node: the owner recorded on the
// Service while it is eligible (unless l2.failback), else by hash.
func Plan(cfg *config.Config, self string, v View) []Decision {
	var out []Decision
	for _, s := range v.Services {
		for _, addr := range s.Status {
			var l2, bgp []int
			if p := cfg.PoolOf(addr); p != nil {
				l2 = l2Ads(cfg, p.Name)
				bgp = bgpAds(cfg, p.Name)
			}
			if len(l2) == 0 && len(bgp) == 0 {
				out = append(out, Decision{Service: s.Key(), Addr: addr, Mode: ModeNone, Reason: ReasonNoAdvertisement})
				continue
			}
			if len(l2) > 0 {
				out = append(out, planL2(cfg, self, v, s, addr, l2))
			}
			if len(bgp) > 0 {
				out = append(out, planBGP(cfg, self, v, s, addr, bgp))
			}
		}
	}
	slices.SortFunc(out, func(a, b Decision) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.Addr.Compare(b.Addr), cmp.Compare(a.Mode, b.Mode))
	})
	return out
}

func planL2(cfg *config.Config, self string, v View, s cluster.Service, addr netip.Addr, ads []int) Decision {
	d := Decision{Service: s.Key(), Addr: addr, Mode: ModeL2}
	for _, i := range ads {
		d.Advertisements = append(d.Advertisements, cfg.L2.Advertisements[i].Name)
	}
	var cands []owner.Candidate
	for node, m := range v.Alive {
		ifaces := m.Interfaces
		if node == self {
			ifaces = published(cfg, v.Interfaces)
		}
		if eligibleL2(cfg, v, s, node, ifaces, ads) == "" {
			// A Service's creationTimestamp has whole seconds; a term
			// that began in the same second counts as older, or every
			// node started just before the Service would look younger.
			cands = append(cands, owner.Candidate{Node: node, Since: m.Since.Truncate(time.Second)})
		}
	}
	d.Owner = owner.Choose(s.Key(), s.Created, recordedOwner(s, v), cands, cfg.L2.Failback)
	switch r := eligibleL2(cfg, v, s, self, published(cfg, v.Interfaces), ads); {
	case r != "":
		d.Reason = r
	case d.Owner == self:
		d.Reason, d.Announce = ReasonOwner, true
		d.Interfaces = l2Interfaces(cfg, v, self, addr, ads)
		d.FromPeer = s.L2Owner != "" && s.L2Owner != self
	default:
		d.Reason = ReasonOtherOwner
	}
	return d
}

func planBGP(cfg *config.Config, self string, v View, s cluster.Service, addr netip.Addr, ads []int) Decision {
	d := Decision{Service: s.Key(), Addr: addr, Mode: ModeBGP}
	var sel []*config.Selector
	for _, i := range ads {
		a := cfg.BGP.Advertisements[i]
		sel = append(sel, a.NodeSelector)
		if node, ok := v.Nodes[self]; ok && a.NodeSelector.Matches(node.Labels) {
			d.Advertisements = append(d.Advertisements, a.Name)
		}
	}
	if r := eligible(v, s, self, sel); r != "" {
		d.Reason, d.Advertisements = r, nil
		return d
	}
	d.Reason, d.Announce = ReasonEligible, true
	return d
}

// eligible checks the rules every mode shares, in the order their reasons
// are reported; "" means eligible.
func eligible(v View, s cluster.Service, node string, selectors []*config.Selector) Reason {
	if _, ok := v.Alive[node]; !ok {
		return ReasonNotAlive
	}
	n, ok := v.Nodes[node]
	switch {
	case !ok:
		return ReasonUnknownNode
	case n.Excluded:
		return ReasonExcluded
	case n.Cordoned:
		return ReasonCordoned
	case !slices.ContainsFunc(selectors, func(sel *config.Selector) bool { return sel.Matches(n.Labels) }):
		return ReasonNotSelected
	case s.Spec.Local && !s.Endpoints[node]:
		return ReasonNoLocalEndpoints
	}
	return ""
}

// eligibleL2 adds the interface rule: one of the selecting advertisements
// has an interface on the node. ifaces is what the node published (nil:
// unknown, assumed present).
func eligibleL2(cfg *config.Config, v View, s cluster.Service, node string, ifaces []string, ads []int) Reason {
	var sel []*config.Selector
	for _, i := range ads {
		sel = append(sel, cfg.L2.Advertisements[i].NodeSelector)
	}
	if r := eligible(v, s, node, sel); r != "" {
		return r
	}
	if ifaces == nil {
		return ""
	}
	labels := v.Nodes[node].Labels
	for _, i := range ads {
		a := cfg.L2.Advertisements[i]
		if a.NodeSelector.Matches(labels) && hasInterface(a, ifaces) {
			return ""
		}
	}
	return ReasonInterfaceMissing
}

func hasInterface(a config.L2Advertisement, ifaces []string) bool {
	if len(a.Interfaces) == 0 {
		return slices.Contains(ifaces, AnyInterface)
	}
	return slices.ContainsFunc(a.Interfaces, func(n string) bool { return slices.Contains(ifaces, n) })
}

// l2Interfaces are the interfaces this node answers on for addr: the
// interfaces it has of the advertisements that select it, or, for an
// advertisement that lists none, the links it may use by default
// (defaultLinks).
func l2Interfaces(cfg *config.Config, v View, self string, addr netip.Addr, ads []int) []string {
	have, labels := v.Interfaces, v.Nodes[self].Labels
	var out []string
	for _, i := range ads {
		a := cfg.L2.Advertisements[i]
		if !a.NodeSelector.Matches(labels) {
			continue
		}
		if len(a.Interfaces) == 0 {
			out = append(out, defaultLinks(cfg, v, addr)...)
			continue
		}
		for _, n := range a.Interfaces {
			if slices.Contains(have, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// defaultLinks are the links an advertisement without interfaces answers
// on for addr: those not excluded (l2.exclude_interfaces: pod, CNI and
// container links) with an address in a subnet that contains addr, or all
// of those not excluded when none has one (a pool from a subnet the nodes
// have no address in: as MetalLB does).
func defaultLinks(cfg *config.Config, v View, addr netip.Addr) []string {
	var usable, onLink []string
	for _, n := range v.Interfaces {
		if cfg.L2.Excluded(n) {
			continue
		}
		usable = append(usable, n)
		if slices.ContainsFunc(v.Subnets[n], func(p netip.Prefix) bool { return p.Contains(addr) }) {
			onLink = append(onLink, n)
		}
	}
	if len(onLink) > 0 {
		return onLink
	}
	return usable
}

// PublishedInterfaces is what this node tells the others about its
// interfaces (in its liveness Lease), so that every node can apply the
// interface rule to every other: the names of its usable interfaces that
// an L2 advertisement lists, and AnyInterface if it has any usable
// interface at all. Sorted.
func PublishedInterfaces(cfg *config.Config, ifaces []string) []string {
	return published(cfg, ifaces)
}

func published(cfg *config.Config, ifaces []string) []string {
	out := []string{}
	if slices.ContainsFunc(ifaces, func(n string) bool { return !cfg.L2.Excluded(n) }) {
		out = append(out, AnyInterface)
	}
	for _, a := range cfg.L2.Advertisements {
		for _, n := range a.Interfaces {
			if slices.Contains(ifaces, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func l2Ads(cfg *config.Config, pool string) []int {
	var out []int
	for i, a := range cfg.L2.Advertisements {
		if slices.Contains(a.Pools, pool) {
			out = append(out, i)
		}
	}
	return out
}

func bgpAds(cfg *config.Config, pool string) []int {
	var out []int
	for i, a := range cfg.BGP.Advertisements {
		if slices.Contains(a.Pools, pool) {
			out = append(out, i)
		}
	}
	return out
}

// recordedOwner is the Service's recorded L2 owner if the record is from
// that node's current term of life. A node whose view broke (a cable
// pulled, cut from the API, restarted) starts a new term; its older
// record may be stale in its own informer while another node took the
// addresses meanwhile, so it does not hold them.
func recordedOwner(s cluster.Service, v View) string {
	if m, ok := v.Alive[s.L2Owner]; ok && !s.L2OwnerSince.IsZero() && !m.Since.Equal(s.L2OwnerSince) {
		return ""
	}
	return s.L2Owner
}
