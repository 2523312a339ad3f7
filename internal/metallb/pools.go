package metallb

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbdproject/lbd/internal/config"
)

// outPool is one lbd pool to write.
type outPool struct {
	src        *object
	name       string
	addresses  []string
	autoAssign *bool
	avoidBuggy *bool
	namespaces []string
	priority   int
	notes      []string // comment lines written above the pool
	announced  bool     // some advertisement lists it; otherwise written commented out
	pinned     int      // MetalLB serviceAllocation.priority + 1 when the pool has namespaces; 0 otherwise
}

func (c *converter) convertPools() {
	c.poolByName = map[string]*outPool{}
	for _, o := range c.objects(kindPool) {
		s := o.Spec.(*ipAddressPoolSpec)
		p := &outPool{src: o, autoAssign: s.AutoAssign, avoidBuggy: s.AvoidBuggyIPs}
		var note string
		p.name, note = c.lbdName(o, "pools", "",
			fmt.Sprintf("; Services that name the pool in metallb.io/address-pool must name %q instead", sanitize(o.Meta.Name, 63)))
		p.addNote(note)
		if len(s.Addresses) == 0 {
			c.errorf(o, "spec.addresses", "empty; a pool needs at least one CIDR or range")
		}
		for i, a := range s.Addresses {
			r, note, err := poolRange(a)
			if err != nil {
				c.errorf(o, fmt.Sprintf("spec.addresses[%d]", i), "%q: %v", a, err)
				continue
			}
			if note != "" {
				p.addNote(c.warn(o, fmt.Sprintf("spec.addresses[%d]", i), "%s", note))
			}
			p.addresses = append(p.addresses, r)
		}
		c.serviceAllocation(o, s.ServiceAllocation, p)
		c.pools = append(c.pools, p)
		c.poolByName[o.Meta.Name] = p
	}
	// MetalLB tries the pools pinned to a Service's namespace first, lowest
	// serviceAllocation.priority first and unset last, then every other
	// pool; lbd tries higher priorities first. Pinned pools therefore get
	// priorities above 0, in the reverse order of MetalLB's.
	maxPrio := 0
	for _, p := range c.pools {
		maxPrio = max(maxPrio, p.pinned-1)
	}
	for _, p := range c.pools {
		switch {
		case p.pinned == 1:
			p.priority = 1
		case p.pinned > 1:
			p.priority = maxPrio - (p.pinned - 1) + 2
		}
		if p.pinned > 0 {
			was := "unset"
			if p.pinned > 1 {
				was = fmt.Sprint(p.pinned - 1)
			}
			p.addNote(fmt.Sprintf("priority %d: MetalLB tries pools restricted to a namespace before the others, by serviceAllocation.priority (lower first, unset last; here %s); lbd tries higher priorities first", p.priority, was))
		}
	}
}

func (p *outPool) addNote(n string) {
	if n != "" {
		p.notes = append(p.notes, n)
	}
}

// poolRange checks one MetalLB address entry the way lbd reads it and
// returns it as lbd writes it. MetalLB accepts a CIDR with host bits set
// and means the whole network; lbd wants the network written out.
func poolRange(s string) (string, string, error) {
	r, err := config.ParseRange(s)
	if err == nil {
		return r.String(), "", nil
	}
	if pfx, perr := netip.ParsePrefix(strings.TrimSpace(s)); perr == nil && pfx.Masked() != pfx {
		return pfx.Masked().String(), fmt.Sprintf("%q has host bits set; MetalLB uses the whole network, written as %s", s, pfx.Masked()), nil
	}
	return "", "", err
}

// serviceAllocation carries over the namespace restriction and priority of
// a pool. lbd restricts pools by namespace name only.
func (c *converter) serviceAllocation(o *object, sa *serviceAllocation, p *outPool) {
	if sa == nil {
		return
	}
	const f = "spec.serviceAllocation"
	for i, ns := range sa.Namespaces {
		if !contains(p.namespaces, ns) {
			p.namespaces = append(p.namespaces, ns)
		} else {
			c.errorf(o, fmt.Sprintf("%s.namespaces[%d]", f, i), "namespace %q listed twice", ns)
		}
	}
	selectors := len(sa.NamespaceSelectors) > 0 || len(sa.ServiceSelectors) > 0
	if len(sa.NamespaceSelectors) > 0 {
		p.addNote(c.warn(o, f+".namespaceSelectors", "lbd restricts pools by namespace name only, not by namespace labels; list the selected namespaces in pools[].namespaces by hand"))
	}
	if len(sa.ServiceSelectors) > 0 {
		p.addNote(c.warn(o, f+".serviceSelectors", "lbd cannot restrict a pool to Services with given labels; every Service of an allowed namespace may use it"))
	}
	no := false
	switch {
	case len(p.namespaces) > 0:
		p.pinned = sa.Priority + 1
		if sa.Priority < 0 {
			p.pinned = 1
		}
	case selectors:
		// MetalLB auto-assigned this pool only to the selected Services. With
		// the selectors gone, auto_assign: false keeps every other Service
		// from getting it unasked; Services that hold its addresses keep them.
		p.autoAssign = &no
		p.addNote(c.warn(o, f, "written with auto_assign: false, so that no Service gets an address from it without asking (annotation metallb.io/address-pool or metallb.io/loadBalancerIPs); was: automatic for the selected Services only"))
	default:
		// MetalLB never assigns automatically from a pool whose
		// serviceAllocation names no namespace and no selector.
		p.autoAssign = &no
		p.addNote("auto_assign: false because MetalLB never auto-assigns from a pool whose serviceAllocation selects nothing")
	}
	if sa.Priority != 0 && len(p.namespaces) == 0 {
		p.addNote(c.warn(o, f+".priority", "ignored: without namespaces the pool is not tried automatically, so its priority has no effect"))
	}
}

// resolvePools turns an advertisement's ipAddressPools and
// ipAddressPoolSelectors into lbd pool names. Neither given means every
// pool, as in MetalLB.
func (c *converter) resolvePools(o *object, names []string, selectors []labelSelector) (out []string, notes []string) {
	add := func(p *outPool) {
		if !contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	if len(names) == 0 && len(selectors) == 0 {
		for _, p := range c.pools {
			add(p)
		}
		return out, []string{"announces every pool, as the MetalLB advertisement named none; a pool added later must be listed here"}
	}
	for i, n := range names {
		p, ok := c.poolByName[n]
		if !ok {
			notes = append(notes, c.warn(o, fmt.Sprintf("spec.ipAddressPools[%d]", i), "no IPAddressPool %q in the input; MetalLB skips it, and so does lbd", n))
			continue
		}
		add(p)
	}
	for i, s := range selectors {
		sel, err := lbdSelector(s)
		if err != nil {
			c.errorf(o, fmt.Sprintf("spec.ipAddressPoolSelectors[%d]", i), "%v", err)
			continue
		}
		var matched []string
		for _, p := range c.pools {
			if sel.Matches(p.src.Meta.Labels) {
				add(p)
				matched = append(matched, p.name)
			}
		}
		notes = append(notes, fmt.Sprintf("ipAddressPoolSelectors[%d] (%s) matched pools: %s", i, sel, listOrNone(matched)))
	}
	return out, notes
}

// lbdSelector converts a label selector to lbd's type, to match pool labels.
func lbdSelector(s labelSelector) (*config.Selector, error) {
	sel := &config.Selector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		var op config.SelectorOp
		if err := op.UnmarshalText([]byte(r.Operator)); err != nil {
			return nil, fmt.Errorf("operator %q: %v", r.Operator, err)
		}
		sel.MatchExpressions = append(sel.MatchExpressions, config.Requirement{Key: r.Key, Operator: op, Values: r.Values})
	}
	return sel, nil
}

// markAnnounced finds the pools no advertisement lists. lbd refuses such a
// pool (its addresses would be handed out but unreachable), so it is
// written commented out.
func (c *converter) markAnnounced() {
	used := map[string]bool{}
	for _, a := range c.l2 {
		for _, p := range a.pools {
			used[p] = true
		}
	}
	for _, a := range c.bgpAds {
		for _, p := range a.pools {
			used[p] = true
		}
	}
	for _, p := range c.pools {
		p.announced = used[p.name]
		if !p.announced {
			p.addNote(c.warn(p.src, "", "no L2Advertisement or BGPAdvertisement announces this pool, so MetalLB hands out its addresses without announcing them; lbd refuses such a pool, so it is written commented out, and Services holding its addresses would get new ones from other pools: add an advertisement for it, or move those Services first"))
		}
	}
}

func contains(list []string, s string) bool {
	return slices.Contains(list, s)
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
