package metallb

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lbdproject/lbd/internal/config"
)

// outL2 is one lbd L2 advertisement to write.
type outL2 struct {
	src          *object
	name         string
	pools        []string
	interfaces   []string
	nodeSelector *labelSelector
	notes        []string
}

// outBGPAd is one lbd BGP advertisement to write.
type outBGPAd struct {
	src                *object
	name               string
	pools              []string
	aggLen, aggLenV6   *int32
	localPref          *uint32
	communities, large []string
	peers              []string
	nodeSelector       *labelSelector
	notes              []string
}

func (c *converter) convertL2() {
	for _, o := range c.objects(kindL2Adv) {
		s := o.Spec.(*l2AdvertisementSpec)
		pools, notes := c.resolvePools(o, s.IPAddressPools, s.IPAddressPoolSelectors)
		if len(pools) == 0 {
			c.warn(o, "spec.ipAddressPools", "selects no pool of the input, so MetalLB announces nothing with it; left out")
			continue
		}
		sels, names, split := c.splitBySelector(o, "l2", s.NodeSelectors)
		for i, sel := range sels {
			c.l2 = append(c.l2, &outL2{
				src: o, name: names[i], pools: pools, interfaces: s.Interfaces,
				nodeSelector: sel, notes: slices.Concat(split, notes),
			})
		}
	}
}

func (c *converter) convertBGPAdvertisements() {
	ads := c.objects(kindBGPAdv)
	if len(ads) > 0 && len(c.peers) == 0 {
		why := "there is no BGPPeer to announce to (MetalLB announces nothing with it either), and lbd refuses BGP advertisements without peers"
		if len(c.objects(kindPeer)) > 0 {
			why = "no BGPPeer could be converted (see the errors)"
		}
		for _, o := range ads {
			c.warn(o, "", "left out: %s", why)
		}
		return
	}
	for _, o := range ads {
		s := o.Spec.(*bgpAdvertisementSpec)
		pools, notes := c.resolvePools(o, s.IPAddressPools, s.IPAddressPoolSelectors)
		if len(pools) == 0 {
			c.warn(o, "spec.ipAddressPools", "selects no pool of the input, so MetalLB announces nothing with it; left out")
			continue
		}
		ad := &outBGPAd{src: o, pools: pools, aggLen: s.AggregationLength, aggLenV6: s.AggregationLengthV6}
		if s.LocalPref != 0 {
			lp := s.LocalPref
			ad.localPref = &lp
		}
		notes = append(notes, c.communityValues(o, s.Communities, ad)...)
		if len(s.Peers) > 0 {
			for i, name := range s.Peers {
				if lbdName, ok := c.peerNames[name]; ok {
					ad.peers = append(ad.peers, lbdName)
				} else {
					notes = append(notes, c.warn(o, fmt.Sprintf("spec.peers[%d]", i), "no BGPPeer %q in the input; left out", name))
				}
			}
			if len(ad.peers) == 0 {
				c.warn(o, "spec.peers", "names no BGPPeer of the input, so MetalLB announces nothing with it; left out (in lbd, no peers would mean every peer)")
				continue
			}
		}
		sels, names, split := c.splitBySelector(o, "bgp", s.NodeSelectors)
		for i, sel := range sels {
			a := *ad
			a.name, a.nodeSelector, a.notes = names[i], sel, slices.Concat(split, notes)
			c.bgpAds = append(c.bgpAds, &a)
		}
	}
}

// splitBySelector gives the node selector and lbd name of each lbd
// advertisement one MetalLB advertisement becomes: one per nodeSelector,
// since MetalLB announces from nodes matching any of them and lbd has one
// node_selector per advertisement.
func (c *converter) splitBySelector(o *object, section string, sels []labelSelector) ([]*labelSelector, []string, []string) {
	all := nodeSelectors(sels)
	if len(all) <= 1 {
		name, note := c.lbdName(o, section, "", "")
		var notes []string
		if note != "" {
			notes = append(notes, note)
		}
		if len(all) == 0 {
			return []*labelSelector{nil}, []string{name}, notes
		}
		return all, []string{name}, notes
	}
	var names, notes []string
	for i := range all {
		name, note := c.lbdName(o, section, fmt.Sprintf("-%d", i+1), "")
		names = append(names, name)
		if note != "" && i == 0 {
			notes = append(notes, note)
		}
	}
	notes = append(notes, c.warn(o, "spec.nodeSelectors", "%d selectors, of which any may match; lbd has one node_selector per advertisement, so this is written as %d advertisements %s, one per selector (same nodes, new names)", len(all), len(all), strings.Join(names, ", ")))
	return all, names, notes
}

// readCommunities collects the aliases of the Community objects. MetalLB
// resolves an advertisement's community by alias name; COMMUNITY.ALIAS is
// accepted too.
func (c *converter) readCommunities() {
	c.communities = map[string]string{}
	owner := map[string]*object{}
	for _, o := range c.objects(kindCommunity) {
		for i, a := range o.Spec.(*communitySpec).Communities {
			field := fmt.Sprintf("spec.communities[%d]", i)
			if a.Name == "" || a.Value == "" {
				c.errorf(o, field, "needs a name and a value")
				continue
			}
			if prev, dup := owner[a.Name]; dup {
				c.errorf(o, field+".name", "alias %q is also defined in %s; MetalLB refuses that", a.Name, prev.ID())
				continue
			}
			if _, _, err := parseCommunity(a.Value); err != nil {
				c.errorf(o, field+".value", "%q: %v; MetalLB refuses the whole configuration then", a.Value, err)
				continue
			}
			owner[a.Name] = o
			c.communities[a.Name] = a.Value
			c.communities[o.Meta.Name+"."+a.Name] = a.Value
		}
	}
}

// communityValues resolves an advertisement's communities into standard and
// large ones, and returns notes naming the aliases it resolved.
func (c *converter) communityValues(o *object, list []string, ad *outBGPAd) []string {
	var notes []string
	for i, raw := range list {
		v := strings.TrimSpace(raw)
		if alias, ok := c.communities[v]; ok {
			notes = append(notes, fmt.Sprintf("community %s is %s", v, alias))
			v = alias
		}
		std, large, err := parseCommunity(v)
		switch {
		case err != nil && v == strings.TrimSpace(raw) && !strings.Contains(v, ":"):
			c.errorf(o, fmt.Sprintf("spec.communities[%d]", i), "%q is neither a community (ASN:VALUE, or large:GLOBAL:DATA1:DATA2) nor an alias of a Community object in the input", raw)
		case err != nil:
			c.errorf(o, fmt.Sprintf("spec.communities[%d]", i), "%q: %v", raw, err)
		case large != "":
			ad.large = appendNew(ad.large, large)
		case !slices.ContainsFunc(ad.communities, func(x string) bool { return sameCommunity(x, std) }):
			ad.communities = append(ad.communities, std)
		}
	}
	return notes
}

// parseCommunity reads a MetalLB community value: a standard community
// ("64512:100", or a well-known name lbd knows), or a large one, written
// "large:1:2:3" as MetalLB wants it, or "1:2:3".
func parseCommunity(v string) (std, large string, err error) {
	v = strings.TrimSpace(v)
	rest, isLarge := cutPrefixFold(v, "large:")
	if !isLarge {
		var sc config.Community
		if err := sc.UnmarshalText([]byte(v)); err == nil {
			return v, "", nil
		} else if strings.Count(v, ":") != 2 {
			return "", "", err
		}
	}
	var lc config.LargeCommunity
	if err := lc.UnmarshalText([]byte(rest)); err != nil {
		return "", "", err
	}
	return "", lc.String(), nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// appendNew appends s unless list has it: MetalLB keeps communities as a set.
func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sameCommunity(a, b string) bool {
	var x, y config.Community
	return x.UnmarshalText([]byte(a)) == nil && y.UnmarshalText([]byte(b)) == nil && x == y
}
