package pool

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbdproject/lbd/internal/config"
)

func mustPool(t testing.TB, name string, ranges ...string) config.Pool {
	t.Helper()
	p := config.Pool{Name: name}
	for _, s := range ranges {
		r, err := config.ParseRange(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Addresses = append(p.Addresses, r)
	}
	return p
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func svc(key string, mods ...func(*Service)) Service {
	ns, _, _ := strings.Cut(key, "/")
	s := Service{Key: key, Namespace: ns, Families: []Family{IPv4}, Ports: []Port{{"TCP", 80}}}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func requested(addrs ...string) func(*Service) {
	return func(s *Service) {
		for _, a := range addrs {
			s.Requested = append(s.Requested, ip(a))
		}
	}
}

func inPool(name string) func(*Service) { return func(s *Service) { s.Pool = name } }

func sharing(key string, port int32) func(*Service) {
	return func(s *Service) { s.SharingKey = key; s.Ports = []Port{{"TCP", port}} }
}

func dual(policy FamilyPolicy, fams ...Family) func(*Service) {
	return func(s *Service) { s.Policy = policy; s.Families = fams }
}

func addrsOf(t *testing.T, as Assignment, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	return config.JoinAddrs(as.Addrs)
}

func wantReason(t *testing.T, err error, r Reason, text string) {
	t.Helper()
	if ReasonOf(err) != r || !strings.Contains(fmt.Sprint(err), text) {
		t.Errorf("got %v (reason %q), want reason %s containing %q", err, ReasonOf(err), r, text)
	}
}

func TestAssignInOrder(t *testing.T) {
	a := New([]config.Pool{mustPool(t, "p", "192.0.2.10-192.0.2.12")})
	for i, want := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		as, err := a.Assign(svc(fmt.Sprintf("default/s%d", i)), nil)
		if got := addrsOf(t, as, err); got != want || as.Pool != "p" {
			t.Errorf("s%d: got %s from %s, want %s", i, got, as.Pool, want)
		}
	}
	_, err := a.Assign(svc("default/s3"), nil)
	wantReason(t, err, ReasonPoolExhausted, "no IPv4 address free in pool p")

	a.Release("default/s1")
	as, err := a.Assign(svc("default/s3"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.11" {
		t.Errorf("after a release: got %s", got)
	}
	// Idempotent.
	as, err = a.Assign(svc("default/s3"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.11" {
		t.Errorf("second Assign: got %s", got)
	}
}

func TestAvoidBuggyIPs(t *testing.T) {
	p := mustPool(t, "p", "192.0.2.254-192.0.3.2")
	p.AvoidBuggyIPs = true
	a := New([]config.Pool{p})
	var got []string
	for i := range 3 {
		as, err := a.Assign(svc(fmt.Sprintf("default/s%d", i)), nil)
		got = append(got, addrsOf(t, as, err))
	}
	if strings.Join(got, " ") != "192.0.2.254 192.0.3.1 192.0.3.2" {
		t.Errorf("got %v", got)
	}
	if u := a.Usage(); u[0].Size != 3 || u[0].InUse != 3 {
		t.Errorf("usage %+v: .255 and .0 must count in neither", u)
	}
	_, err := a.Assign(svc("default/x", requested("192.0.2.255")), nil)
	wantReason(t, err, ReasonAvoidedAddress, "avoid_buggy_ips")
}

func TestPoolOrder(t *testing.T) {
	low := mustPool(t, "low", "192.0.2.0/30")
	high := mustPool(t, "high", "198.51.100.0/30")
	high.Priority = 10
	off := mustPool(t, "manual", "203.0.113.0/30")
	no := false
	off.AutoAssign = &no
	a := New([]config.Pool{low, off, high})

	as, err := a.Assign(svc("default/a"), nil)
	if got := addrsOf(t, as, err); got != "198.51.100.0" {
		t.Errorf("higher priority first: got %s", got)
	}
	as, err = a.Assign(svc("default/b", inPool("manual")), nil)
	if got := addrsOf(t, as, err); got != "203.0.113.0" || as.Pool != "manual" {
		t.Errorf("auto_assign: false pool by annotation: got %s from %s", got, as.Pool)
	}
	_, err = a.Assign(svc("default/c", inPool("nope")), nil)
	wantReason(t, err, ReasonUnknownPool, `no pool is named "nope"`)

	// Equal priority: file order.
	b := New([]config.Pool{mustPool(t, "first", "203.0.113.8/30"), mustPool(t, "second", "192.0.2.0/30")})
	as, err = b.Assign(svc("default/a"), nil)
	if got := addrsOf(t, as, err); got != "203.0.113.8" {
		t.Errorf("file order: got %s", got)
	}
}

func TestNamespaces(t *testing.T) {
	ingress := mustPool(t, "ingress", "203.0.113.10/32")
	ingress.Namespaces = []string{"ingress-nginx"}
	a := New([]config.Pool{ingress, mustPool(t, "general", "192.0.2.0/30")})

	_, err := a.Assign(svc("tenant/grab", requested("203.0.113.10")), nil)
	wantReason(t, err, ReasonNotAllowedInNamespace, "203.0.113.10 is in pool ingress, which namespace tenant may not use")
	_, err = a.Assign(svc("tenant/grab", inPool("ingress")), nil)
	wantReason(t, err, ReasonNotAllowedInNamespace, "pool ingress may not be used by namespace tenant")

	as, err := a.Assign(svc("tenant/web"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.0" {
		t.Errorf("auto assignment must skip the restricted pool: got %s", got)
	}
	as, err = a.Assign(svc("ingress-nginx/controller", requested("203.0.113.10")), nil)
	if got := addrsOf(t, as, err); got != "203.0.113.10" {
		t.Errorf("allowed namespace: got %s", got)
	}

	only := New([]config.Pool{ingress})
	_, err = only.Assign(svc("tenant/web"), nil)
	wantReason(t, err, ReasonNotAllowedInNamespace, "no automatically assigned pool may be used by namespace tenant")
}

func TestRequested(t *testing.T) {
	a := New([]config.Pool{mustPool(t, "a", "192.0.2.0/28"), mustPool(t, "b", "198.51.100.0/28", "2001:db8::/64")})
	as, err := a.Assign(svc("default/pinned", requested("192.0.2.7")), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.7" {
		t.Fatalf("got %s", got)
	}
	tests := []struct {
		name   string
		s      Service
		reason Reason
		text   string
	}{
		{"in use", svc("default/x", requested("192.0.2.7")), ReasonAddressInUse, "the address is used by default/pinned"},
		{"in no pool", svc("default/x", requested("203.0.113.1")), ReasonAddressNotInAnyPool, "203.0.113.1 is in no pool (pools: a, b)"},
		{"two per family", svc("default/x", requested("192.0.2.1", "192.0.2.2")), ReasonBadAnnotation, "more than one IPv4 address requested"},
		{"wrong family", svc("default/x", requested("2001:db8::5")), ReasonBadAnnotation, "requested 2001:db8::5 is IPv6, but the Service's ipFamilies are IPv4"},
		{"pool mismatch", svc("default/x", requested("192.0.2.1"), inPool("b")), ReasonBadAnnotation, "192.0.2.1 is in pool a, but the Service asks for pool b"},
	}
	for _, tt := range tests {
		_, err := a.Assign(tt.s, nil)
		wantReason(t, err, tt.reason, tt.text)
		if _, held := a.Lookup(tt.s.Key); held {
			t.Errorf("%s: a refused Service holds an address", tt.name)
		}
	}
}

func TestSharing(t *testing.T) {
	a := New([]config.Pool{mustPool(t, "p", "192.0.2.0/30")})
	dns := func(key string, port int32) Service { return svc(key, sharing("dns", port)) }

	as1, err := a.Assign(dns("default/dns-tcp", 53), nil)
	first := addrsOf(t, as1, err)
	as2, err := a.Assign(svc("default/dns-udp", sharing("dns", 53), func(s *Service) { s.Ports = []Port{{"UDP", 53}} }), nil)
	if got := addrsOf(t, as2, err); got != first {
		t.Errorf("same key, other protocol: got %s, want shared %s", got, first)
	}
	// Asking for the shared address with a colliding port is refused...
	_, err = a.Assign(svc("default/dns-dup", sharing("dns", 53), requested(first)), nil)
	wantReason(t, err, ReasonSharingConflict, "port 53/TCP is already used on this address by default/dns-tcp")
	// ...while automatic assignment gives another address.
	asDup, err := a.Assign(dns("default/dns-dup2", 53), nil)
	if got := addrsOf(t, asDup, err); got == first {
		t.Errorf("colliding ports were put on the shared address %s", got)
	}
	a.Release("default/dns-dup2")
	_, err = a.Assign(svc("default/other", requested(first)), nil)
	wantReason(t, err, ReasonAddressInUse, "sharing needs the same allow-shared-ip key")

	local := func(key, sel string, port int32) Service {
		return svc(key, sharing("web", port), func(s *Service) { s.Local, s.Selector = true, sel })
	}
	asL, err := a.Assign(local("default/web-80", "app=web", 80), nil)
	web := addrsOf(t, asL, err)
	if web == first {
		t.Errorf("another key must get another address")
	}
	as, err := a.Assign(local("default/web-443", "app=web", 443), nil)
	if got := addrsOf(t, as, err); got != web {
		t.Errorf("Local with the same selector: got %s, want %s", got, web)
	}
	_, err = a.Assign(svc("default/web-cluster", requested(web), sharing("web", 8080)), nil)
	wantReason(t, err, ReasonSharingConflict, "must all be Local and select the same pods")
	_, err = a.Assign(svc("default/web-other", requested(web), sharing("web", 8443), func(s *Service) { s.Local, s.Selector = true, "app=other" }), nil)
	wantReason(t, err, ReasonSharingConflict, "select the same pods")

	a.Release("default/dns-tcp")
	if _, err := a.Assign(svc("default/x", requested(first)), nil); err == nil {
		t.Error("an address still shared by default/dns-udp was freed")
	}
	a.Release("default/dns-udp")
	as, err = a.Assign(svc("default/x", requested(first)), nil)
	if got := addrsOf(t, as, err); got != first {
		t.Errorf("after both sharers left: got %s", got)
	}
}

func TestDualStack(t *testing.T) {
	v4 := mustPool(t, "v4only", "198.51.100.0/30")
	v4.Priority = 5
	a := New([]config.Pool{v4, mustPool(t, "both", "192.0.2.0/30", "2001:db8::/126")})

	as, err := a.Assign(svc("default/req", dual(RequireDualStack, IPv6, IPv4)), nil)
	if got := addrsOf(t, as, err); got != "2001:db8::, 192.0.2.0" || as.Pool != "both" {
		t.Errorf("RequireDualStack: got %s from %s (one pool, the Service's family order)", got, as.Pool)
	}
	as, err = a.Assign(svc("default/pref", dual(PreferDualStack, IPv4, IPv6)), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.1, 2001:db8::1" {
		t.Errorf("PreferDualStack skips the higher-priority single-family pool: got %s", got)
	}
	as, err = a.Assign(svc("default/single", dual(SingleStack, IPv4, IPv6)), nil)
	if got := addrsOf(t, as, err); got != "198.51.100.0" {
		t.Errorf("SingleStack: got %s", got)
	}

	b := New([]config.Pool{v4})
	as, err = b.Assign(svc("default/pref", dual(PreferDualStack, IPv4, IPv6)), nil)
	if got := addrsOf(t, as, err); got != "198.51.100.0" {
		t.Errorf("PreferDualStack without IPv6 pools: got %s", got)
	}
	_, err = b.Assign(svc("default/req", dual(RequireDualStack, IPv4, IPv6)), nil)
	wantReason(t, err, ReasonNoPoolForFamily, "no pool usable by namespace default has IPv6 addresses")
	if _, held := b.Lookup("default/req"); held {
		t.Error("a failed RequireDualStack Service holds an address")
	}
	_, err = b.Assign(svc("default/v6", dual(SingleStack, IPv6)), nil)
	wantReason(t, err, ReasonNoPoolForFamily, "IPv6")
}

func TestSticky(t *testing.T) {
	pools := []config.Pool{mustPool(t, "p", "192.0.2.0/28", "2001:db8::/64")}
	a := New(pools)
	// An address from status is kept even though lower ones are free.
	as, err := a.Assign(svc("default/web"), []netip.Addr{ip("192.0.2.9")})
	if got := addrsOf(t, as, err); got != "192.0.2.9" {
		t.Errorf("status address not kept: got %s", got)
	}
	// A change of the Service that does not concern its address keeps it.
	as, err = a.Assign(svc("default/web", func(s *Service) { s.Ports = []Port{{"TCP", 8080}} }), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.9" {
		t.Errorf("port change moved the address: got %s", got)
	}
	// A change that cannot be met keeps the old address.
	_, err = a.Assign(svc("default/web", requested("203.0.113.1")), nil)
	wantReason(t, err, ReasonAddressNotInAnyPool, "203.0.113.1")
	if got, _ := a.Lookup("default/web"); config.JoinAddrs(got.Addrs) != "192.0.2.9" {
		t.Errorf("a failed edit cost the address: %v", got.Addrs)
	}

	// Rebuild after a restart, in any order: every address stays.
	status := map[string][]netip.Addr{}
	b := New(pools)
	for i := range 12 {
		s := svc(fmt.Sprintf("default/s%02d", i), dual(PreferDualStack, IPv4, IPv6))
		as, err := b.Assign(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		status[s.Key] = as.Addrs
	}
	c := New(pools)
	keys := make([]string, 0, len(status))
	for k := range status {
		keys = append(keys, k)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		as, err := c.Assign(svc(k, dual(PreferDualStack, IPv4, IPv6)), status[k])
		if err != nil || !slices.Equal(as.Addrs, status[k]) {
			t.Errorf("%s: rebuilt as %v (%v), had %v", k, as.Addrs, err, status[k])
		}
	}
}

func TestStrandedAndSetPools(t *testing.T) {
	p := mustPool(t, "p", "192.0.2.0/28")
	q := mustPool(t, "q", "198.51.100.0/28")
	a := New([]config.Pool{p, q})
	if _, err := a.Assign(svc("default/web", requested("192.0.2.9")), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(svc("shop/cart", requested("198.51.100.3")), nil); err != nil {
		t.Fatal(err)
	}

	shrunk := mustPool(t, "p", "192.0.2.0/29")
	got := Stranded([]config.Pool{shrunk, q}, heldOf(a))
	if len(got) != 1 || got[0] != "192.0.2.9 (default/web): it would be in no pool" {
		t.Errorf("shrinking p: %q", got)
	}
	qLocked := q
	qLocked.Namespaces = []string{"other"}
	got = Stranded([]config.Pool{p, qLocked}, heldOf(a))
	if len(got) != 1 || !strings.Contains(got[0], "198.51.100.3 (shop/cart): pool q would no longer allow namespace shop") {
		t.Errorf("restricting q: %q", got)
	}
	if got := Stranded([]config.Pool{mustPool(t, "renamed", "192.0.2.0/24"), q}, heldOf(a)); len(got) != 0 {
		t.Errorf("growing and renaming strands nothing, got %q", got)
	}

	grown := mustPool(t, "p", "192.0.2.0/27")
	a.SetPools([]config.Pool{grown, q})
	if u := a.Usage(); u[0].Size != 32 || u[0].InUse != 1 || u[1].InUse != 1 {
		t.Errorf("usage after SetPools: %+v", u)
	}
	if _, err := a.Assign(svc("default/x", requested("192.0.2.9")), nil); ReasonOf(err) != ReasonAddressInUse {
		t.Errorf("an address in use became free after SetPools: %v", err)
	}
	as, err := a.Assign(svc("default/web", requested("192.0.2.9")), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.9" {
		t.Errorf("got %s", got)
	}
}

func TestIPv6NeverEnumerated(t *testing.T) {
	a := New([]config.Pool{mustPool(t, "v6", "2001:db8::/64")})
	for i := range 1000 {
		if _, err := a.Assign(svc(fmt.Sprintf("default/s%d", i), dual(SingleStack, IPv6)), nil); err != nil {
			t.Fatal(err)
		}
	}
	p := a.pools[0]
	if n := p.used.spans(); n != 1 {
		t.Errorf("1000 sequential addresses should be one span, got %d", n)
	}
	if u := a.Usage(); u[0].Size != ^uint64(0) || u[0].InUse != 1000 {
		t.Errorf("usage %+v", u)
	}
}

// TestUsedSetModel checks the span set against a plain map under random
// adds and removes.
func TestUsedSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	s := newUsedSet()
	model := map[netip.Addr]bool{}
	base := ip("192.0.2.0")
	at := func(i int) netip.Addr {
		a := base
		for ; i > 0; i-- {
			a = a.Next()
		}
		return a
	}
	for step := range 5000 {
		a := at(rng.IntN(64))
		if model[a] {
			s.remove(a)
			delete(model, a)
		} else {
			s.add(a, a)
			model[a] = true
		}
		if step%50 == 0 {
			for i := range 64 {
				if x := at(i); s.has(x) != model[x] {
					t.Fatalf("step %d: has(%s) = %v, model %v", step, x, s.has(x), model[x])
				}
			}
			// firstFree agrees with the model.
			want, ok := netip.Addr{}, false
			for i := range 64 {
				if !model[at(i)] {
					want, ok = at(i), true
					break
				}
			}
			got, gotOK := s.firstFree(at(0), at(63))
			if got != want || gotOK != ok {
				t.Fatalf("step %d: firstFree = %v %v, want %v %v", step, got, gotOK, want, ok)
			}
		}
	}
}

// heldOf lists what an allocator holds, as Service status would say.
func heldOf(a *Allocator) []Held {
	var out []Held
	for _, al := range a.svcs {
		out = append(out, Held{Key: al.svc.Key, Namespace: al.svc.Namespace, Addrs: al.addrs})
	}
	return out
}

// TestFailedWishKeepsStatus: after a restart, a Service whose new wish
// cannot be met still holds the address its status shows, so it is never
// handed to another Service.
func TestFailedWishKeepsStatus(t *testing.T) {
	a := New([]config.Pool{mustPool(t, "p", "192.0.2.10-192.0.2.12")})
	if _, err := a.Assign(svc("default/b"), []netip.Addr{ip("192.0.2.11")}); err != nil {
		t.Fatal(err)
	}
	// default/a had .10 and now asks for .11, which b holds.
	_, err := a.Assign(svc("default/a", requested("192.0.2.11")), []netip.Addr{ip("192.0.2.10")})
	wantReason(t, err, ReasonAddressInUse, "used by default/b")
	if got, _ := a.Lookup("default/a"); config.JoinAddrs(got.Addrs) != "192.0.2.10" {
		t.Errorf("default/a holds %v, want its status address", got.Addrs)
	}
	as, err := a.Assign(svc("default/c"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.12" {
		t.Errorf("default/c got %s; .10 is still default/a's", got)
	}
	// Asking again still fails while b holds .11...
	_, err = a.Assign(svc("default/a", requested("192.0.2.11")), nil)
	wantReason(t, err, ReasonAddressInUse, "used by default/b")
	// ...and succeeds once b lets go; .10 is freed.
	a.Release("default/b")
	as, err = a.Assign(svc("default/a", requested("192.0.2.11")), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.11" {
		t.Errorf("default/a got %s once .11 was free", got)
	}
	as, err = a.Assign(svc("default/d"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.10" {
		t.Errorf("default/d got %s; .10 should be free again", got)
	}

	// Keep: an unreadable Service keeps what its status shows.
	b := New([]config.Pool{mustPool(t, "p", "192.0.2.10-192.0.2.11")})
	b.Keep(svc("default/bad"), []netip.Addr{ip("192.0.2.10"), ip("203.0.113.1")})
	if got, _ := b.Lookup("default/bad"); config.JoinAddrs(got.Addrs) != "192.0.2.10" {
		t.Errorf("Keep: holds %v", got.Addrs)
	}
	as, err = b.Assign(svc("default/other"), nil)
	if got := addrsOf(t, as, err); got != "192.0.2.11" {
		t.Errorf("default/other got %s", got)
	}
}
