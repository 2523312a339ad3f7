package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ASTrans is the 2-byte stand-in for 4-byte ASNs (RFC 6793); never a real ASN.
const ASTrans = 23456

// validate checks every rule that spans fields. Per-value syntax was already
// checked while decoding.
func validate(c *Config, v *validator, o Options) {
	switch {
	case c.Version == 0:
		if _, written := v.pos["version"]; !written {
			v.errorf("version", "", "missing; add 'version: %d' at the top of the file", Version)
			break
		}
		fallthrough
	case c.Version != Version:
		v.errorf("version", strconv.Itoa(c.Version), "unsupported schema version; this lbd reads version %d", Version)
	}
	if c.Node.Name != "" && !isDNSSubdomain(c.Node.Name) {
		v.errorf("node.name", c.Node.Name, "not a valid Kubernetes Node name (lower-case letters, digits, '-' and '.', at most 253 characters)")
	}
	validateKubernetes(&c.Kubernetes, v)
	validateControlPlane(c, v)
	validatePools(c, v)
	validateL2(c, v)
	validateBGP(c, v, o)
	validateAnnounced(c, v)
	validatePeers(c, v, o)
	validateListen(c, v)
}

func validateKubernetes(k *Kubernetes, v *validator) {
	absPath(v, "kubernetes.kubeconfig", k.Kubeconfig)
	namespace(v, "kubernetes.namespace", k.Namespace)
	if k.LoadBalancerClass != "" {
		if p := labelKeyProblem(k.LoadBalancerClass); p != "" || !strings.Contains(k.LoadBalancerClass, "/") {
			v.errorf("kubernetes.load_balancer_class", k.LoadBalancerClass, "a loadBalancerClass is a prefixed name such as lbd.io/lbd; leave it out to serve Services with no class")
		}
	}
	validateLease(v, "kubernetes.allocator_lease", k.AllocatorLease)
	l := k.Liveness
	positive(v, "kubernetes.liveness.renew_interval", l.RenewInterval)
	if !atMost(v, "kubernetes.liveness.duration", l.Duration, maxLiveness) || !atMost(v, "kubernetes.liveness.renew_interval", l.RenewInterval, maxLiveness) {
		return
	}
	if l.RenewInterval > 0 && l.Duration < 2*l.RenewInterval {
		v.errorf("kubernetes.liveness.duration", l.Duration.String(), "must be at least twice renew_interval (%s), so that one late renew does not make this node look dead", l.RenewInterval)
	}
}

// validateLease enforces client-go's leader-election invariants:
// duration > renew_deadline > 1.2 × retry_period.
func validateLease(v *validator, path string, l Lease) {
	if !isDNSSubdomain(l.Name) {
		v.errorf(path+".name", l.Name, "not a valid Lease name (lower-case letters, digits, '-' and '.')")
	}
	namespace(v, path+".namespace", l.Namespace)
	inRange := atMost(v, path+".duration", l.Duration, maxLease)
	inRange = atMost(v, path+".renew_deadline", l.RenewDeadline, maxLease) && inRange
	inRange = atMost(v, path+".retry_period", l.RetryPeriod, maxLease) && inRange
	if !positive(v, path+".retry_period", l.RetryPeriod) || !inRange {
		return
	}
	if l.RenewDeadline*10 <= l.RetryPeriod*12 {
		v.errorf(path+".renew_deadline", l.RenewDeadline.String(),
			"must be more than 1.2 × retry_period (%s), i.e. more than %s", l.RetryPeriod, l.RetryPeriod*12/10)
	}
	if l.Duration <= l.RenewDeadline {
		v.errorf(path+".duration", l.Duration.String(),
			"must be longer than renew_deadline (%s): a leader must give up before its lease can be taken", l.RenewDeadline)
	}
}

func validateControlPlane(c *Config, v *validator) {
	cp := c.ControlPlane
	if cp == nil {
		return
	}
	const p = "control_plane"
	if len(cp.Addresses) == 0 {
		v.errorf(p+".addresses", "", "required: the API server VIP, one IPv4 and/or one IPv6 address")
	}
	var seen [2]int // index+1 of the address per family
	for i, a := range cp.Addresses {
		path := fmt.Sprintf("%s.addresses[%d]", p, i)
		if msg := unicastProblem(a); msg != "" {
			v.errorf(path, a.String(), "%s", msg)
			continue
		}
		fam := 0
		if a.Is6() {
			fam = 1
		}
		if seen[fam] != 0 {
			v.errorf(path, a.String(), "a second IPv%d VIP; the control plane has at most one address per family", family(a))
		}
		seen[fam] = i + 1
		for pi, pool := range c.Pools {
			for ri, r := range pool.Addresses {
				if r.Contains(a) {
					v.errorf(path, a.String(), "the control-plane VIP lies inside pool %q (pools[%d].addresses[%d] %s); a Service could be given it; exclude it from the pool", pool.Name, pi, ri, r)
				}
			}
		}
	}
	ifaceName(v, p+".interface", cp.Interface, true)
	if cp.Port == 0 {
		v.errorf(p+".port", "0", "must be a TCP port 1-65535")
	}
	u, err := url.Parse(cp.LocalAPIServer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.errorf(p+".local_api_server", cp.LocalAPIServer, "not an http(s) URL with a host, e.g. https://127.0.0.1:6443")
	default:
		if h, err := netip.ParseAddr(u.Hostname()); err == nil {
			for _, a := range cp.Addresses {
				if a == h {
					v.errorf(p+".local_api_server", cp.LocalAPIServer, "points at the VIP; it must be this node's own API server (e.g. https://127.0.0.1:%d), or the election would depend on itself", cp.Port)
				}
			}
		}
	}
	validateLease(v, p+".lease", cp.Lease)
	h := cp.Health
	positive(v, p+".health.interval", h.Interval)
	if positive(v, p+".health.timeout", h.Timeout) && h.Interval > 0 && h.Timeout > h.Interval {
		v.errorf(p+".health.timeout", h.Timeout.String(), "must not be longer than health.interval (%s)", h.Interval)
	}
	if h.FailureThreshold < 1 {
		v.errorf(p+".health.failure_threshold", strconv.Itoa(h.FailureThreshold), "must be at least 1")
	}
	validateGratuitous(v, p+".gratuitous", cp.Gratuitous)
}

func validateGratuitous(v *validator, path string, g Gratuitous) {
	if g.Count < 1 || g.Count > 100 {
		v.errorf(path+".count", strconv.Itoa(g.Count), "must be 1-100 (the first is sent at once)")
	}
	if g.Count > 1 && g.Interval < 10*time.Millisecond {
		v.errorf(path+".interval", g.Interval.String(), "must be at least 10ms when count is more than 1")
	}
	if g.Refresh != 0 && g.Refresh < time.Second {
		v.errorf(path+".refresh", g.Refresh.String(), "must be 0 (off) or at least 1s")
	}
}

func validatePools(c *Config, v *validator) {
	names := map[string]int{}
	type owned struct {
		r          Range
		pool, rIdx int
	}
	var all []owned
	for i, pool := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		uniqueName(v, names, "pools", i, pool.Name, "pool", "advertisements and annotations refer to it by")
		if len(pool.Addresses) == 0 {
			v.errorf(path+".addresses", "", "required: at least one CIDR, range or address")
		}
		for j, r := range pool.Addresses {
			if !r.From.IsValid() {
				continue // already reported while decoding
			}
			rp := fmt.Sprintf("%s.addresses[%d]", path, j)
			if msg := unicastProblem(r.From); msg != "" {
				v.errorf(rp, r.String(), "%s", msg)
			} else if msg := unicastProblem(r.To); msg != "" {
				v.errorf(rp, r.String(), "%s", msg)
			} else if b, ok := specialBlockIn(r); ok {
				hint := ""
				if !b.prefix.Contains(r.From) && !b.prefix.Contains(r.To) {
					hint = "; check the range's end for a typo"
				}
				v.errorf(rp, r.String(), "the range contains %s (%s), which cannot be announced%s", b.prefix, b.name, hint)
			}
			all = append(all, owned{r, i, j})
		}
		seenNS := map[string]bool{}
		for j, ns := range pool.Namespaces {
			np := fmt.Sprintf("%s.namespaces[%d]", path, j)
			namespace(v, np, ns)
			if seenNS[ns] {
				v.errorf(np, ns, "namespace listed twice")
			}
			seenNS[ns] = true
		}
	}
	// Overlaps, within and across pools, in O(n log n): sort by start;
	// a range overlaps an earlier one exactly when it starts at or before
	// the furthest end seen so far in its family. Each range is reported
	// at most once, against the range that reaches furthest.
	slices.SortStableFunc(all, func(a, b owned) int { return a.r.From.Compare(b.r.From) })
	var reach [2]*owned // per family: the range with the furthest end so far
	for i := range all {
		b := &all[i]
		fam := 0
		if b.r.From.Is6() {
			fam = 1
		}
		a := reach[fam]
		if a != nil && b.r.From.Compare(a.r.To) <= 0 {
			x, y := *a, *b
			if x.pool > y.pool || (x.pool == y.pool && x.rIdx > y.rIdx) {
				x, y = y, x
			}
			where := fmt.Sprintf("pool %q", c.Pools[x.pool].Name)
			if x.pool == y.pool {
				where = "another entry of the same pool"
			}
			v.errorf(fmt.Sprintf("pools[%d].addresses[%d]", y.pool, y.rIdx), y.r.String(),
				"overlaps %s (pools[%d].addresses[%d] %s); every address may belong to one pool only", where, x.pool, x.rIdx, x.r)
		}
		if a == nil || b.r.To.Compare(a.r.To) > 0 {
			reach[fam] = b
		}
	}
}

func validateL2(c *Config, v *validator) {
	names := map[string]int{}
	for i, a := range c.L2.Advertisements {
		path := fmt.Sprintf("l2.advertisements[%d]", i)
		uniqueName(v, names, "l2.advertisements", i, a.Name, "advertisement", "a name to tell advertisements apart in logs and status")
		poolRefs(c, v, path, a.Pools)
		seen := map[string]bool{}
		for j, ifn := range a.Interfaces {
			ip := fmt.Sprintf("%s.interfaces[%d]", path, j)
			ifaceName(v, ip, ifn, true)
			if seen[ifn] {
				v.errorf(ip, ifn, "interface listed twice")
			}
			seen[ifn] = true
		}
		a.NodeSelector.validate(v, path+".node_selector")
	}
	validateGratuitous(v, "l2.gratuitous", c.L2.Gratuitous)
	if g := c.L2.HandoverGrace; g < 0 || g > 20*time.Second {
		v.errorf("l2.handover_grace", g.String(), "must be 0s-20s (0s: stop answering at once); the shipped unit gives lbd 30s to stop")
	}
	validateConflictProbe(v, "l2.conflict_probe", c.L2.ConflictProbe)
	for i, p := range c.L2.ExcludeInterfaces {
		if _, err := regexp.Compile("^(?:" + p + ")$"); err != nil {
			v.errorf(fmt.Sprintf("l2.exclude_interfaces[%d]", i), p, "not a regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
}

// validateConflictProbe keeps the probe short: its length adds to every
// failover of an address this node has not announced recently.
func validateConflictProbe(v *validator, path string, p ConflictProbe) {
	if p.Count < 1 || p.Count > 10 {
		v.errorf(path+".count", strconv.Itoa(p.Count), "must be 1-10")
	}
	if p.Interval < 10*time.Millisecond || p.Interval > time.Second {
		v.errorf(path+".interval", p.Interval.String(), "must be 10ms-1s (the probe delays taking an address by count × interval)")
	}
	if p.Recheck < time.Second || p.Recheck > time.Hour {
		v.errorf(path+".recheck", p.Recheck.String(), "must be 1s-1h")
	}
}

// validateAnnounced reports pools that nothing announces. When an
// advertisement names an unknown pool, that error already tells the story
// (usually a misspelt name), so this one stays quiet.
func validateAnnounced(c *Config, v *validator) {
	used := map[string]bool{}
	var refs []string
	for _, a := range c.L2.Advertisements {
		refs = append(refs, a.Pools...)
	}
	for _, a := range c.BGP.Advertisements {
		refs = append(refs, a.Pools...)
	}
	for _, r := range refs {
		used[r] = true
	}
	for _, p := range c.Pools {
		delete(used, p.Name)
	}
	if len(used) > 0 {
		return // some reference names no pool
	}
	for _, r := range refs {
		used[r] = true
	}
	for i, p := range c.Pools {
		if p.Name != "" && !used[p.Name] {
			v.errorf(fmt.Sprintf("pools[%d]", i), p.Name, "no advertisement announces this pool, so its addresses would be unreachable; list it in l2.advertisements[].pools or bgp.advertisements[].pools, or remove it")
		}
	}
}

func validateListen(c *Config, v *validator) {
	l := &c.Listen
	host, port, err := net.SplitHostPort(l.HTTP)
	if err != nil {
		v.errorf("listen.http", l.HTTP, "not HOST:PORT, e.g. 127.0.0.1:7475 (use [::1]:7475 for IPv6)")
	} else {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.errorf("listen.http", l.HTTP, "port %q is not a number 0-65535", port)
		} else if name, taken := takenPorts[n]; taken {
			v.errorf("listen.http", l.HTTP, "port %d is %s; running both during a migration would clash, pick another (default 7475)", n, name)
		}
		if _, err := netip.ParseAddr(host); err != nil && host != "" && host != "localhost" {
			v.errorf("listen.http", l.HTTP, "host must be an IP address, localhost, or empty for all addresses")
		} else if cp := c.ControlPlane; cp != nil && clashes(host, port, cp.LocalAPIServer) {
			v.errorf("listen.http", l.HTTP, "is the local API server's address (control_plane.local_api_server %s); pick another port (default %s)", cp.LocalAPIServer, DefaultHTTP)
		}
	}
	absPath(v, "listen.socket", l.Socket)
	if len(l.Socket) > 107 {
		v.errorf("listen.socket", l.Socket, "a unix socket path must be at most 107 bytes")
	}
}

// Upper bounds on timings. Past them lbd would take minutes to notice a
// dead node, and the arithmetic on them (client-go's 1.2 × retry_period,
// Lease seconds in an int32) could overflow.
const (
	maxLease    = time.Hour
	maxLiveness = time.Minute
)

// Shared small checks.

// atMost reports whether d is within max, recording an error if not.
func atMost(v *validator, path string, d, max time.Duration) bool {
	if d > max {
		v.errorf(path, d.String(), "must be at most %s", fmtDuration(max))
		return false
	}
	return true
}

// fmtDuration writes whole hours and minutes without Go's trailing zeros
// (1h, not 1h0m0s).
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func positive(v *validator, path string, d time.Duration) bool {
	if d <= 0 {
		v.errorf(path, d.String(), "must be more than 0")
		return false
	}
	return true
}

func absPath(v *validator, path, value string) {
	if value == "" {
		v.errorf(path, "", "must not be empty")
	} else if !filepath.IsAbs(value) {
		v.errorf(path, value, "must be an absolute path (lbd runs from /)")
	}
}

func namespace(v *validator, path, ns string) {
	if !isDNSLabel(ns) {
		v.errorf(path, ns, "not a valid namespace name (lower-case letters, digits and '-', at most 63)")
	}
}

// ifaceName checks a Linux interface name (IFNAMSIZ is 16 with the NUL).
func ifaceName(v *validator, path, name string, required bool) {
	switch {
	case name == "":
		if required {
			v.errorf(path, "", "required: a network interface name such as eth0")
		}
	case len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		v.errorf(path, name, "not a valid interface name (at most 15 characters, no '/', ':' or spaces)")
	}
}

// uniqueName checks the name of entry i of a list: required, a DNS label,
// and unique. purpose says what the name is for.
func uniqueName(v *validator, seen map[string]int, list string, i int, name, what, purpose string) {
	path := fmt.Sprintf("%s[%d].name", list, i)
	switch {
	case name == "":
		v.errorf(path, "", "required: %s", purpose)
	case !isDNSLabel(name):
		v.errorf(path, name, "must be lower-case letters, digits and '-' (at most 63)")
	default:
		if prev, dup := seen[name]; dup {
			v.errorf(path, name, "duplicate %s name (also %s[%d])", what, list, prev)
			return
		}
		seen[name] = i
	}
}

// poolRefs checks an advertisement's pools list.
func poolRefs(c *Config, v *validator, path string, refs []string) {
	if len(refs) == 0 {
		v.errorf(path+".pools", "", "required: the pools this advertisement announces")
	}
	known := make([]string, 0, len(c.Pools))
	for _, p := range c.Pools {
		if p.Name != "" {
			known = append(known, p.Name)
		}
	}
	seen := map[string]bool{}
	for j, name := range refs {
		pp := fmt.Sprintf("%s.pools[%d]", path, j)
		switch {
		case !contains(known, name):
			v.errorf(pp, name, "no pool has this name; known pools: %s", listOrNone(known))
		case seen[name]:
			v.errorf(pp, name, "pool listed twice")
		}
		seen[name] = true
	}
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// takenPorts are the ports of the tools lbd replaces, which may run beside
// it during a migration.
var takenPorts = map[uint64]string{
	7472: "MetalLB's metrics port",
	7473: "MetalLB's FRR-mode metrics port",
	7946: "MetalLB's memberlist port",
	2112: "kube-vip's metrics port",
}

// clashes reports whether listening on host:port would take the port of
// the API server at apiURL (an empty or unspecified host listens on every
// address).
func clashes(host, port, apiURL string) bool {
	u, err := url.Parse(apiURL)
	if err != nil || u.Port() != port {
		return false
	}
	norm := func(h string) string {
		if h == "localhost" {
			return "127.0.0.1"
		}
		if a, err := netip.ParseAddr(h); err == nil && a.IsUnspecified() {
			return ""
		}
		return h
	}
	a, b := norm(host), norm(u.Hostname())
	return a == "" || b == "" || a == b
}

// specialBlock is an address block no pool may contain.
type specialBlock struct {
	prefix netip.Prefix
	name   string
}

var specialBlocks = []specialBlock{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "IPv4 link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, and the broadcast address"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("fe80::/10"), "IPv6 link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// specialBlockIn returns the first special block r overlaps.
func specialBlockIn(r Range) (specialBlock, bool) {
	for _, b := range specialBlocks {
		if b.prefix.Addr().BitLen() != r.From.BitLen() {
			continue
		}
		if r.Overlaps(Range{From: b.prefix.Addr(), To: lastAddr(b.prefix)}) {
			return b, true
		}
	}
	return specialBlock{}, false
}

// unicastProblem says why a can't be a Service or VIP address, or "".
func unicastProblem(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address cannot be announced"
	case a.IsLoopback():
		return "a loopback address cannot be announced"
	case a.IsMulticast():
		return "a multicast address cannot be announced"
	case a.Is6() && a.IsLinkLocalUnicast():
		return "an IPv6 link-local address cannot be announced (it needs a zone)"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address cannot be announced"
	}
	return ""
}

func isDNSLabel(s string) bool     { return len(s) <= 63 && dns1123Label.MatchString(s) }
func isDNSSubdomain(s string) bool { return len(s) <= 253 && dns1123Sub.MatchString(s) }
