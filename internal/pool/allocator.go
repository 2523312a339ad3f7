package pool

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbdproject/lbd/internal/config"
)

// pool is one configured pool with its taken addresses.
type pool struct {
	cfg   config.Pool
	index int // position in the file
	used  *usedSet
	// size and inUse count addresses per family (index 0: IPv4, 1: IPv6),
	// saturating; reserved addresses (.0/.255 avoided) are in neither.
	size  [2]uint64
	inUse [2]uint64
}

func famIdx(f Family) int {
	if f == IPv4 {
		return 0
	}
	return 1
}

func newPool(cfg config.Pool, index int) *pool {
	p := &pool{cfg: cfg, index: index, used: newUsedSet()}
	for _, r := range cfg.Addresses {
		i := famIdx(familyOf(r.From))
		p.size[i] = satAdd(p.size[i], r.Size())
		if cfg.AvoidBuggyIPs && r.Is4() {
			p.size[i] -= p.reserveBuggy(r)
		}
	}
	return p
}

// reserveBuggy marks the .0 and .255 addresses of an IPv4 range taken, so
// that allocation skips them at no extra cost. It returns how many.
func (p *pool) reserveBuggy(r config.Range) uint64 {
	var n uint64
	b := r.From.As4()
	b[3] = 0
	for base := netip.AddrFrom4(b); base.Compare(r.To) <= 0; {
		c := base.As4()
		for _, last := range []byte{0, 255} {
			c[3] = last
			if a := netip.AddrFrom4(c); r.Contains(a) {
				p.used.add(a, a)
				n++
			}
		}
		c[3] = 255
		next := netip.AddrFrom4(c).Next()
		if !next.IsValid() || !next.Is4() {
			break
		}
		base = next
	}
	return n
}

func isBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

func (p *pool) hasFamily(f Family) bool {
	for _, r := range p.cfg.Addresses {
		if familyOf(r.From) == f {
			return true
		}
	}
	return false
}

func (p *pool) allows(namespace string) bool {
	return len(p.cfg.Namespaces) == 0 || slices.Contains(p.cfg.Namespaces, namespace)
}

// firstFree returns the lowest free address of family f.
func (p *pool) firstFree(f Family) (netip.Addr, bool) {
	for _, r := range p.cfg.Addresses {
		if familyOf(r.From) != f {
			continue
		}
		if a, ok := p.used.firstFree(r.From, r.To); ok {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// addrState is one address in use, by one Service or several sharing it.
type addrState struct {
	pool       *pool
	sharingKey string
	users      []*Service // usually one; a few when shared
}

func (st *addrState) user(key string) int {
	return slices.IndexFunc(st.users, func(u *Service) bool { return u.Key == key })
}

// allocation is what one Service holds.
type allocation struct {
	svc   Service
	addrs []netip.Addr
	// kept marks addresses held by Keep, not granted for svc's wish:
	// the next Assign judges the wish again.
	kept bool
}

// Allocator hands out Service addresses from the configured pools. It is a
// plain data structure: not safe for concurrent use, no goroutines, no
// Kubernetes types. The allocator holder owns one and rebuilds it from
// Service status when it takes over.
type Allocator struct {
	pools  []*pool // file order
	byName map[string]*pool
	addrs  map[netip.Addr]*addrState
	svcs   map[string]*allocation
	shared map[string][]netip.Addr // sharing key → addresses
}

// New returns an allocator over pools, which must be valid (config.Load
// checked them: no overlaps, unique names).
func New(pools []config.Pool) *Allocator {
	a := &Allocator{
		addrs:  map[netip.Addr]*addrState{},
		svcs:   map[string]*allocation{},
		shared: map[string][]netip.Addr{},
	}
	a.setPools(pools)
	return a
}

func (a *Allocator) setPools(pools []config.Pool) {
	a.pools = make([]*pool, len(pools))
	a.byName = make(map[string]*pool, len(pools))
	for i, c := range pools {
		p := newPool(c, i)
		a.pools[i] = p
		a.byName[c.Name] = p
	}
}

// poolOf returns the pool containing addr.
func (a *Allocator) poolOf(addr netip.Addr) *pool {
	for _, p := range a.pools {
		if p.cfg.Contains(addr) {
			return p
		}
	}
	return nil
}

// Lookup returns what a Service holds.
func (a *Allocator) Lookup(key string) (Assignment, bool) {
	al, ok := a.svcs[key]
	if !ok {
		return Assignment{}, false
	}
	return a.assignment(al), true
}

func (a *Allocator) assignment(al *allocation) Assignment {
	as := Assignment{Addrs: slices.Clone(al.addrs)}
	if len(al.addrs) > 0 {
		as.Pool = a.addrs[al.addrs[0]].pool.cfg.Name
	}
	return as
}

// Assign gives svc its addresses. current holds the addresses the Service
// already has (from its status, or from before a change of its spec); each
// is kept when it is still valid for the Service, so an address never
// changes while its Service exists unless the Service's own spec demands
// it. Assign is idempotent: calling it again with the same Service returns
// the same addresses.
//
// When the Service's spec changed and its new wish cannot be met, it keeps
// what it had: a failed edit never costs a Service its address.
func (a *Allocator) Assign(svc Service, current []netip.Addr) (Assignment, error) {
	prev, ok := a.svcs[svc.Key]
	if ok {
		if !prev.kept && sameSpec(prev.svc, svc) {
			return a.assignment(prev), nil
		}
		current = append(slices.Clone(prev.addrs), current...)
		a.Release(svc.Key)
	}
	as, err := a.assign(svc, current)
	if err != nil {
		if prev != nil {
			for _, addr := range prev.addrs {
				a.take(prev.svc, addr)
			}
			a.svcs[svc.Key] = prev
		} else {
			// Nothing held yet (a rebuild): still reserve what the
			// status shows, so no other Service is given it.
			a.Keep(svc, current)
		}
	}
	return as, err
}

// Keep records that svc holds those of addrs that lie in a pool its
// namespace may use and are free or shareable, without looking at what the
// Service asks for and without allocating anything new. It is for Services
// whose wish cannot be met or read (a bad annotation): they keep the
// addresses their status shows, and nobody else is given them.
func (a *Allocator) Keep(svc Service, addrs []netip.Addr) {
	if _, ok := a.svcs[svc.Key]; ok {
		return
	}
	al := &allocation{svc: svc, kept: true}
	for _, addr := range addrs {
		p := a.poolOf(addr)
		if p == nil || !p.allows(svc.Namespace) || (p.cfg.AvoidBuggyIPs && isBuggy(addr)) {
			continue
		}
		if st, ok := a.addrs[addr]; ok && canShare(st, svc) != nil {
			continue
		}
		a.take(svc, addr)
		al.addrs = append(al.addrs, addr)
	}
	if len(al.addrs) > 0 {
		a.svcs[svc.Key] = al
	}
}

func (a *Allocator) assign(svc Service, current []netip.Addr) (Assignment, error) {
	want, err := neededFamilies(svc)
	if err != nil {
		return Assignment{}, err
	}
	requested := map[Family]netip.Addr{}
	for _, r := range svc.Requested {
		f := familyOf(r)
		if _, dup := requested[f]; dup {
			return Assignment{}, fail(ReasonBadAnnotation, "more than one %s address requested (%s); request at most one per family", f, config.JoinAddrs(svc.Requested))
		}
		if !slices.Contains(want.all, f) {
			return Assignment{}, fail(ReasonBadAnnotation, "requested %s is %s, but the Service's ipFamilies are %s", r, f, familyList(want.all))
		}
		requested[f] = r
	}

	have := map[Family]netip.Addr{}
	// Requested addresses first: they must be had exactly.
	for f, r := range requested {
		if err := a.claimable(svc, r); err != nil {
			return Assignment{}, err
		}
		have[f] = r
	}
	// Then what the Service already holds, where still valid.
	for _, c := range current {
		f := familyOf(c)
		if _, ok := have[f]; ok || !slices.Contains(want.all, f) {
			continue
		}
		if a.claimable(svc, c) == nil {
			have[f] = c
		}
	}
	if err := a.fill(svc, want, have); err != nil {
		return Assignment{}, err
	}

	al := &allocation{svc: svc}
	for _, f := range want.all {
		if addr, ok := have[f]; ok {
			al.addrs = append(al.addrs, addr)
			a.take(svc, addr)
		}
	}
	a.svcs[svc.Key] = al
	return a.assignment(al), nil
}

// families says which address families a Service needs and which it only
// prefers.
type families struct {
	all      []Family // in the Service's order
	required []Family
}

func neededFamilies(svc Service) (families, error) {
	fams := svc.Families
	if len(fams) == 0 {
		fams = []Family{IPv4}
	}
	switch svc.Policy {
	case SingleStack:
		return families{all: fams[:1], required: fams[:1]}, nil
	case PreferDualStack:
		return families{all: fams, required: fams[:1]}, nil
	default:
		if len(fams) < 2 {
			return families{}, fail(ReasonBadAnnotation, "ipFamilyPolicy RequireDualStack needs two ipFamilies")
		}
		return families{all: fams, required: fams}, nil
	}
}

// fill finds addresses for the families still missing from have, from one
// pool where possible.
func (a *Allocator) fill(svc Service, want families, have map[Family]netip.Addr) error {
	var missing []Family
	for _, f := range want.all {
		if _, ok := have[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cands, err := a.candidates(svc)
	if err != nil {
		return err
	}
	// Prefer the pool of an address already had.
	for _, addr := range have {
		if p := a.addrs[addr]; p != nil {
			cands = moveFront(cands, p.pool)
		} else if p := a.poolOf(addr); p != nil {
			cands = moveFront(cands, p)
		}
	}
	// One pool for every missing family, if any pool can.
	for _, p := range cands {
		got := map[Family]netip.Addr{}
		for _, f := range missing {
			if addr, ok := a.find(svc, p, f); ok {
				got[f] = addr
			}
		}
		if len(got) == len(missing) {
			maps.Copy(have, got)
			return nil
		}
	}
	// Otherwise each family from the first pool that has room.
	for _, f := range missing {
		for _, p := range cands {
			if addr, ok := a.find(svc, p, f); ok {
				have[f] = addr
				break
			}
		}
	}
	for _, f := range want.required {
		if _, ok := have[f]; ok {
			continue
		}
		var names []string
		fam := false
		for _, p := range cands {
			names = append(names, p.cfg.Name)
			fam = fam || p.hasFamily(f)
		}
		if !fam {
			return fail(ReasonNoPoolForFamily, "no pool usable by namespace %s has %s addresses (pools tried: %s)", svc.Namespace, f, strings.Join(names, ", "))
		}
		if len(want.required) > 1 && len(have) > 0 {
			return fail(ReasonDualStackUnavailable, "RequireDualStack: no %s address free in %s", f, strings.Join(names, ", "))
		}
		return fail(ReasonPoolExhausted, "no %s address free in pool %s", f, strings.Join(names, ", "))
	}
	return nil
}

// candidates lists the pools a Service may get new addresses from, in the
// order they are tried: the pool it names, or every auto-assign pool its
// namespace may use, by priority and then file order.
func (a *Allocator) candidates(svc Service) ([]*pool, error) {
	if svc.Pool != "" {
		p, ok := a.byName[svc.Pool]
		switch {
		case !ok:
			return nil, fail(ReasonUnknownPool, "no pool is named %q", svc.Pool)
		case !p.allows(svc.Namespace):
			return nil, fail(ReasonNotAllowedInNamespace, "pool %s may not be used by namespace %s", p.cfg.Name, svc.Namespace)
		}
		return []*pool{p}, nil
	}
	var out []*pool
	for _, p := range a.pools {
		if p.cfg.AutoAssignEnabled() && p.allows(svc.Namespace) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fail(ReasonNotAllowedInNamespace, "no automatically assigned pool may be used by namespace %s", svc.Namespace)
	}
	slices.SortStableFunc(out, func(x, y *pool) int {
		return cmp.Or(cmp.Compare(y.cfg.Priority, x.cfg.Priority), cmp.Compare(x.index, y.index))
	})
	return out, nil
}

func moveFront(ps []*pool, p *pool) []*pool {
	i := slices.Index(ps, p)
	if i <= 0 {
		return ps
	}
	out := append([]*pool{p}, ps[:i]...)
	return append(out, ps[i+1:]...)
}

// find picks an address of family f in p for svc: an address it may share
// first, then the lowest free one.
func (a *Allocator) find(svc Service, p *pool, f Family) (netip.Addr, bool) {
	if svc.SharingKey != "" {
		for _, addr := range a.shared[svc.SharingKey] {
			if st := a.addrs[addr]; st.pool == p && familyOf(addr) == f && canShare(st, svc) == nil {
				return addr, true
			}
		}
	}
	return p.firstFree(f)
}

// claimable reports whether svc may have addr.
func (a *Allocator) claimable(svc Service, addr netip.Addr) error {
	p := a.poolOf(addr)
	switch {
	case p == nil:
		var names []string
		for _, q := range a.pools {
			names = append(names, q.cfg.Name)
		}
		return fail(ReasonAddressNotInAnyPool, "%s is in no pool (pools: %s)", addr, strings.Join(names, ", "))
	case !p.allows(svc.Namespace):
		return fail(ReasonNotAllowedInNamespace, "%s is in pool %s, which namespace %s may not use", addr, p.cfg.Name, svc.Namespace)
	case svc.Pool != "" && svc.Pool != p.cfg.Name:
		return fail(ReasonBadAnnotation, "%s is in pool %s, but the Service asks for pool %s", addr, p.cfg.Name, svc.Pool)
	case p.cfg.AvoidBuggyIPs && isBuggy(addr):
		return fail(ReasonAvoidedAddress, "%s ends in .0 or .255, which pool %s avoids (avoid_buggy_ips)", addr, p.cfg.Name)
	}
	if st, ok := a.addrs[addr]; ok {
		return canShare(st, svc)
	}
	return nil
}

// canShare reports whether svc may join the users of an address.
func canShare(st *addrState, svc Service) error {
	if svc.SharingKey == "" || st.sharingKey != svc.SharingKey {
		var keys []string
		for _, u := range st.users {
			keys = append(keys, u.Key)
		}
		return fail(ReasonAddressInUse, "the address is used by %s (sharing needs the same allow-shared-ip key on every Service)", strings.Join(keys, ", "))
	}
	for _, u := range st.users {
		for _, p := range svc.Ports {
			if slices.Contains(u.Ports, p) {
				return fail(ReasonSharingConflict, "port %d/%s is already used on this address by %s", p.Port, p.Protocol, u.Key)
			}
		}
		if (u.Local || svc.Local) && (u.Local != svc.Local || u.Selector != svc.Selector) {
			return fail(ReasonSharingConflict, "with externalTrafficPolicy: Local, Services sharing an address must all be Local and select the same pods (%s differs)", u.Key)
		}
	}
	return nil
}

// take records that svc uses addr.
func (a *Allocator) take(svc Service, addr netip.Addr) {
	s := svc
	st, ok := a.addrs[addr]
	if !ok {
		p := a.poolOf(addr)
		st = &addrState{pool: p, sharingKey: svc.SharingKey}
		a.addrs[addr] = st
		p.used.add(addr, addr)
		p.inUse[famIdx(familyOf(addr))]++
		if svc.SharingKey != "" {
			a.shared[svc.SharingKey] = append(a.shared[svc.SharingKey], addr)
		}
	}
	st.users = append(st.users, &s)
	slices.SortFunc(st.users, func(x, y *Service) int { return strings.Compare(x.Key, y.Key) })
}

// Release frees what a Service holds; shared addresses stay while another
// Service uses them.
func (a *Allocator) Release(key string) {
	al, ok := a.svcs[key]
	if !ok {
		return
	}
	delete(a.svcs, key)
	for _, addr := range al.addrs {
		st := a.addrs[addr]
		if i := st.user(key); i >= 0 {
			st.users = slices.Delete(st.users, i, i+1)
		}
		if len(st.users) > 0 {
			continue
		}
		delete(a.addrs, addr)
		st.pool.used.remove(addr)
		st.pool.inUse[famIdx(familyOf(addr))]--
		if st.sharingKey != "" {
			list := slices.DeleteFunc(a.shared[st.sharingKey], func(x netip.Addr) bool { return x == addr })
			if len(list) == 0 {
				delete(a.shared, st.sharingKey)
			} else {
				a.shared[st.sharingKey] = list
			}
		}
	}
}

// sameSpec reports whether two versions of a Service ask for the same
// addresses.
func sameSpec(x, y Service) bool {
	return x.Namespace == y.Namespace && x.Pool == y.Pool && x.SharingKey == y.SharingKey &&
		x.Policy == y.Policy && x.Local == y.Local && x.Selector == y.Selector &&
		slices.Equal(x.Families, y.Families) && slices.Equal(x.Requested, y.Requested) &&
		slices.Equal(x.Ports, y.Ports)
}

func familyList(fs []Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, ", ")
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}

// Held is what one Service holds, as its status says.
type Held struct {
	Key, Namespace string
	Addrs          []netip.Addr
}

// Stranded lists, for a new set of pools, every address in use that would
// be left outside a pool its Service may use, as "ADDR (SERVICE): why",
// sorted. A reload with a non-empty answer must be refused.
func Stranded(pools []config.Pool, held []Held) []string {
	next := New(pools)
	var out []string
	for _, h := range held {
		for _, addr := range h.Addrs {
			p := next.poolOf(addr)
			var why string
			switch {
			case p == nil:
				why = "it would be in no pool"
			case !p.allows(h.Namespace):
				why = fmt.Sprintf("pool %s would no longer allow namespace %s", p.cfg.Name, h.Namespace)
			case p.cfg.AvoidBuggyIPs && isBuggy(addr):
				why = fmt.Sprintf("pool %s would avoid .0/.255 addresses", p.cfg.Name)
			default:
				continue
			}
			out = append(out, fmt.Sprintf("%s (%s): %s", addr, h.Key, why))
		}
	}
	slices.Sort(out)
	return out
}

// SetPools replaces the pools, keeping every address in use. The caller
// checks Stranded first; an address left outside every pool keeps its
// Service but no longer counts in any pool.
func (a *Allocator) SetPools(pools []config.Pool) {
	a.setPools(pools)
	for addr, st := range a.addrs {
		p := a.poolOf(addr)
		if p == nil {
			continue
		}
		st.pool = p
		if !p.used.has(addr) {
			p.used.add(addr, addr)
		}
		p.inUse[famIdx(familyOf(addr))]++
	}
}

// Usage is the fill level of one pool and family.
type Usage struct {
	Pool   string
	Family Family
	Size   uint64 // saturates at 2^64-1
	InUse  uint64
}

// Usage reports every pool's size and use per family it has.
func (a *Allocator) Usage() []Usage {
	var out []Usage
	for _, p := range a.pools {
		for _, f := range []Family{IPv4, IPv6} {
			if p.hasFamily(f) {
				i := famIdx(f)
				out = append(out, Usage{Pool: p.cfg.Name, Family: f, Size: p.size[i], InUse: p.inUse[i]})
			}
		}
	}
	return out
}
