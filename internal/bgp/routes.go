package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lbdproject/lbd/internal/config"
)

// Route is one prefix this node announces with itself as next hop.
type Route struct {
	Prefix netip.Prefix
	// LocalPref is sent to iBGP peers only (BGP drops LOCAL_PREF on
	// eBGP sessions); nil sends none.
	LocalPref        *uint32
	Communities      []config.Community
	LargeCommunities []config.LargeCommunity
	// Peers restricts the route to the peers with these names; empty
	// means every peer of the route's address family.
	Peers []string
}

// tagGlobal is the global administrator of the internal large community
// that marks a route for one peer; AS 4294967295 is reserved (RFC 7300)
// so no real community uses it. Export policies strip it.
const tagGlobal = 4294967295

func tagOf(n uint32) string { return fmt.Sprintf("%d:0:%d", uint32(tagGlobal), n) }

type installed struct {
	uuid  []byte
	route Route
}

// Set replaces the announced routes with desired. Routes that did not
// change are not sent again; changed attributes replace the route in
// place, without resetting any session. Two routes for the same prefix
// are merged: the union of their communities and peers (an unrestricted
// route makes the merge unrestricted) and the higher local preference.
func (s *Speaker) Set(ctx context.Context, desired []Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: speaker is closed")
	}
	s.routes = merge(desired)
	if s.srv == nil || s.global == (globalKey{}) {
		return nil // installed by Apply
	}
	return s.syncPaths(ctx)
}

// merge normalises desired into one Route per prefix, each with sorted,
// unique lists.
func merge(desired []Route) map[netip.Prefix]Route {
	out := make(map[netip.Prefix]Route, len(desired))
	for _, r := range desired {
		r.Prefix = r.Prefix.Masked()
		if old, ok := out[r.Prefix]; ok {
			if old.LocalPref != nil && (r.LocalPref == nil || *old.LocalPref > *r.LocalPref) {
				r.LocalPref = old.LocalPref
			}
			r.Communities = append(slices.Clone(old.Communities), r.Communities...)
			r.LargeCommunities = append(slices.Clone(old.LargeCommunities), r.LargeCommunities...)
			if len(old.Peers) == 0 || len(r.Peers) == 0 {
				r.Peers = nil
			} else {
				r.Peers = append(slices.Clone(old.Peers), r.Peers...)
			}
		}
		r.Communities = slices.Clone(r.Communities)
		slices.Sort(r.Communities)
		r.Communities = slices.Compact(r.Communities)
		r.LargeCommunities = slices.Clone(r.LargeCommunities)
		slices.SortFunc(r.LargeCommunities, func(a, b config.LargeCommunity) int {
			return strings.Compare(fmt.Sprintf("%010d%010d%010d", a.Global, a.Data1, a.Data2), fmt.Sprintf("%010d%010d%010d", b.Global, b.Data1, b.Data2))
		})
		r.LargeCommunities = slices.Compact(r.LargeCommunities)
		r.Peers = slices.Clone(r.Peers)
		slices.Sort(r.Peers)
		r.Peers = slices.Compact(r.Peers)
		out[r.Prefix] = r
	}
	return out
}

func sameRoute(a, b Route) bool {
	lp := func(p *uint32) int64 {
		if p == nil {
			return -1
		}
		return int64(*p)
	}
	return a.Prefix == b.Prefix && lp(a.LocalPref) == lp(b.LocalPref) &&
		slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities) &&
		slices.Equal(a.Peers, b.Peers)
}

// syncPaths makes GoBGP's local paths match s.routes.
func (s *Speaker) syncPaths(ctx context.Context) error {
	var errs []error
	for pfx, in := range s.paths {
		if _, ok := s.routes[pfx]; ok {
			continue
		}
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Uuid: in.uuid}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", pfx, err))
			continue
		}
		delete(s.paths, pfx)
	}
	// Sorted, so that routers see a stable order.
	pfxs := make([]netip.Prefix, 0, len(s.routes))
	for pfx := range s.routes {
		pfxs = append(pfxs, pfx)
	}
	sort.Slice(pfxs, func(i, j int) bool { return pfxs[i].Addr().Less(pfxs[j].Addr()) })
	for _, pfx := range pfxs {
		r := s.routes[pfx]
		if in, ok := s.paths[pfx]; ok && sameRoute(in.route, r) {
			continue
		}
		// AddPath with the same prefix replaces the local path: the
		// router sees one UPDATE with the new attributes.
		resp, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: s.apiPath(r)})
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %s: %w", pfx, err))
			continue
		}
		s.paths[pfx] = installed{uuid: resp.Uuid, route: r}
	}
	return errors.Join(errs...)
}

// withdrawAll withdraws every local path and forgets them.
func (s *Speaker) withdrawAll(ctx context.Context) error {
	var errs []error
	for pfx, in := range s.paths {
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Uuid: in.uuid}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", pfx, err))
			continue
		}
		delete(s.paths, pfx)
	}
	return errors.Join(errs...)
}

// tag returns the tag number of a peer name, assigning one on first use.
func (s *Speaker) tag(name string) uint32 {
	if n, ok := s.tags[name]; ok {
		return n
	}
	n := uint32(len(s.tags) + 1)
	s.tags[name] = n
	return n
}

func (s *Speaker) apiPath(r Route) *api.Path {
	a := r.Prefix.Addr()
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: a.String(), PrefixLen: uint32(r.Prefix.Bits())})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	attrs := []*anypb.Any{origin}
	if a.Is4() {
		// 0.0.0.0 is replaced by this node's address on the session.
		nh, _ := anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
		attrs = append(attrs, nh)
	} else {
		mp, _ := anypb.New(&api.MpReachNLRIAttribute{Family: family(a), NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
		attrs = append(attrs, mp)
	}
	if r.LocalPref != nil {
		lp, _ := anypb.New(&api.LocalPrefAttribute{LocalPref: *r.LocalPref})
		attrs = append(attrs, lp)
	}
	if len(r.Communities) > 0 {
		cs := make([]uint32, len(r.Communities))
		for i, c := range r.Communities {
			cs[i] = uint32(c)
		}
		c, _ := anypb.New(&api.CommunitiesAttribute{Communities: cs})
		attrs = append(attrs, c)
	}
	large := make([]*api.LargeCommunity, 0, len(r.LargeCommunities)+len(r.Peers))
	for _, c := range r.LargeCommunities {
		large = append(large, &api.LargeCommunity{GlobalAdmin: c.Global, LocalData1: c.Data1, LocalData2: c.Data2})
	}
	for _, name := range r.Peers {
		large = append(large, &api.LargeCommunity{GlobalAdmin: tagGlobal, LocalData2: s.tag(name)})
	}
	if len(large) > 0 {
		l, _ := anypb.New(&api.LargeCommunitiesAttribute{Communities: large})
		attrs = append(attrs, l)
	}
	return &api.Path{Family: family(a), Nlri: nlri, Pattrs: attrs}
}

// setPolicies installs the policies for the peers in want: nothing
// learned from peers is imported (lbd only announces), and a route tagged
// for some peers goes only to them, without its tags.
func (s *Speaker) setPolicies(ctx context.Context, want map[netip.Addr]session) error {
	addrs := make([]netip.Addr, 0, len(want))
	for a := range want {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	sets := []*api.DefinedSet{{
		DefinedType: api.DefinedType_LARGE_COMMUNITY,
		Name:        "lbd-tagged",
		List:        []string{fmt.Sprintf("^%d:", uint32(tagGlobal))},
	}}
	export := &api.Policy{Name: "lbd-export"}
	for _, a := range addrs {
		w := want[a]
		n := strconv.FormatUint(uint64(s.tag(w.name)), 10)
		bits := 32
		if a.Is6() {
			bits = 128
		}
		sets = append(sets,
			&api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: "lbd-peer-" + n, List: []string{netip.PrefixFrom(a, bits).String()}},
			&api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: "lbd-tag-" + n, List: []string{"^" + tagOf(s.tag(w.name)) + "$"}},
		)
		export.Statements = append(export.Statements, &api.Statement{
			Name: "lbd-to-" + n,
			Conditions: &api.Conditions{
				NeighborSet:       &api.MatchSet{Type: api.MatchSet_ANY, Name: "lbd-peer-" + n},
				LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: "lbd-tag-" + n},
			},
			Actions: &api.Actions{
				RouteAction:    api.RouteAction_ACCEPT,
				LargeCommunity: &api.CommunityAction{Type: api.CommunityAction_REMOVE, Communities: []string{fmt.Sprintf("^%d:", uint32(tagGlobal))}},
			},
		})
	}
	export.Statements = append(export.Statements, &api.Statement{
		Name:       "lbd-not-for-this-peer",
		Conditions: &api.Conditions{LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: "lbd-tagged"}},
		Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
	})
	// Import applies to local paths too: reject only what peers send.
	imp := &api.Policy{Name: "lbd-import", Statements: []*api.Statement{
		{Name: "lbd-no-ebgp", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_EXTERNAL}, Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
		{Name: "lbd-no-ibgp", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_INTERNAL}, Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
	}}
	err := s.srv.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: sets, Policies: []*api.Policy{export, imp}})
	if err != nil {
		return fmt.Errorf("bgp: export policy: %w", err)
	}
	// SetPolicies keeps the assignments; these replace them.
	for _, a := range []*api.PolicyAssignment{
		{Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: "lbd-export"}}, DefaultAction: api.RouteAction_ACCEPT},
		{Name: "global", Direction: api.PolicyDirection_IMPORT, Policies: []*api.Policy{{Name: "lbd-import"}}, DefaultAction: api.RouteAction_ACCEPT},
	} {
		if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("bgp: %s policy: %w", strings.ToLower(a.Direction.String()), err)
		}
	}
	return nil
}
