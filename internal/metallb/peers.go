package metallb

import (
	"fmt"
	"net/netip"
	"time"
)

// outPeer is one lbd BGP peer to write.
type outPeer struct {
	src           *object
	name, address string
	asn           uint32
	port          uint16
	// hold, keepalive and connectRetry are nil when MetalLB left them
	// unset; lbd's defaults then apply.
	hold, keepalive, connectRetry *time.Duration
	sourceAddress                 string
	multihop                      int
	passwordFile                  string
	gracefulRestart               bool
	bfd                           *outBFD
	nodeSelector                  *labelSelector
	notes                         []string
}

func (p *outPeer) addNote(n string) {
	if n != "" {
		p.notes = append(p.notes, n)
	}
}

// outBFD is a peer's bfd: section, in milliseconds.
type outBFD struct{ tx, rx, mult uint32 }

// bfdProfile is a BFDProfile read, and whether a BGPPeer uses it.
type bfdProfile struct {
	src  *object
	bfd  outBFD
	used bool
}

// readBFDProfiles reads the profiles with MetalLB's defaults (300ms,
// 300ms, 3: lbd's too) and warns of what lbd does not do.
func (c *converter) readBFDProfiles() {
	c.bfdProfiles = map[string]*bfdProfile{}
	for _, o := range c.objects(kindBFDProfile) {
		s := o.Spec.(*bfdProfileSpec)
		b := &bfdProfile{src: o, bfd: outBFD{tx: 300, rx: 300, mult: 3}}
		for _, f := range []struct {
			field    string
			v        *uint32
			to       *uint32
			min, max uint32
		}{
			{"spec.transmitInterval", s.TransmitInterval, &b.bfd.tx, 10, 60000},
			{"spec.receiveInterval", s.ReceiveInterval, &b.bfd.rx, 10, 60000},
			{"spec.detectMultiplier", s.DetectMultiplier, &b.bfd.mult, 1, 255},
		} {
			if f.v == nil {
				continue
			}
			if *f.v < f.min || *f.v > f.max {
				c.errorf(o, f.field, "%d is out of range; lbd takes %d to %d", *f.v, f.min, f.max)
				continue
			}
			*f.to = *f.v
		}
		if s.EchoMode != nil && *s.EchoMode {
			c.warn(o, "spec.echoMode", "not carried over: lbd implements no BFD echo function; failures are detected from control packets (transmit/receive interval x multiplier)")
		}
		if s.PassiveMode != nil && *s.PassiveMode {
			c.warn(o, "spec.passiveMode", "not carried over: lbd always sends BFD control packets first; a router in active mode works the same")
		}
		if s.MinimumTTL != nil && *s.MinimumTTL != 254 && *s.MinimumTTL != 255 {
			c.warn(o, "spec.minimumTtl", "%d not carried over: lbd's BFD is single-hop and accepts only TTL 255 (RFC 5881 GTSM)", *s.MinimumTTL)
		}
		c.bfdProfiles[o.Meta.Name] = b
	}
}

// unusedBFDProfiles warns of profiles no BGPPeer refers to.
func (c *converter) unusedBFDProfiles() {
	for _, o := range c.objects(kindBFDProfile) {
		if b := c.bfdProfiles[o.Meta.Name]; b != nil && !b.used {
			c.warn(o, "", "not converted: no BGPPeer uses this profile (spec.bfdProfile)")
		}
	}
}

// peerBFD gives the peer the bfd: section of its BFDProfile.
func (c *converter) peerBFD(o *object, s *bgpPeerSpec, p *outPeer) {
	if s.BFDProfile == "" {
		return
	}
	b := c.bfdProfiles[s.BFDProfile]
	switch {
	case b == nil:
		p.addNote(c.warn(o, "spec.bfdProfile", "%q: no BFDProfile of that name among the inputs; this peer runs no BFD (export the BFDProfiles too)", s.BFDProfile))
	case p.multihop != 0:
		b.used = true
		p.addNote(c.warn(o, "spec.bfdProfile", "%q not carried over: lbd's BFD is single-hop (RFC 5881) and this peer is multi-hop (ebgpMultiHop)", s.BFDProfile))
	default:
		b.used = true
		bfd := b.bfd
		p.bfd = &bfd
		p.addNote(fmt.Sprintf("bfd from BFDProfile %s", s.BFDProfile))
	}
}

func (c *converter) convertPeers() {
	c.peerNames = map[string]string{}
	routerIDs := map[string]*object{}
	for _, o := range c.objects(kindPeer) {
		s := o.Spec.(*bgpPeerSpec)
		p := &outPeer{src: o, gracefulRestart: s.EnableGracefulRestart}
		var note string
		p.name, note = c.lbdName(o, "peers", "", "")
		p.addNote(note)
		c.peerNames[o.Meta.Name] = p.name
		errs := len(c.errors)

		switch {
		case s.MyASN == 0:
			c.errorf(o, "spec.myASN", "missing; MetalLB requires the local AS number")
		case c.asnFrom == nil:
			c.asn, c.asnFrom = s.MyASN, o
		case s.MyASN != c.asn:
			c.errorf(o, "spec.myASN", "%d differs from %s's %d; lbd speaks one local AS for the whole cluster (bgp.asn), so every BGPPeer must have the same myASN", s.MyASN, c.asnFrom.ID(), c.asn)
		}
		c.peerASN(o, s, p)
		c.peerAddresses(o, s, p)
		c.peerTimers(o, s, p)
		if s.PeerPort != 0 {
			p.port = s.PeerPort
		}
		if s.RouterID != "" {
			if a, err := netip.ParseAddr(s.RouterID); err != nil || !a.Is4() {
				c.errorf(o, "spec.routerID", "%q is not an IPv4 address", s.RouterID)
			} else if _, seen := routerIDs[a.String()]; !seen {
				routerIDs[a.String()] = o
			}
		}
		c.peerSelector(o, s, p)
		c.peerPassword(o, s, p)
		c.peerExtras(o, s, p)
		c.peerBFD(o, s, p)
		if len(c.errors) > errs {
			continue // not written; the errors say why
		}
		c.peers = append(c.peers, p)
	}
	c.peerRouterID(routerIDs)
	c.unusedBFDProfiles()
}

func (c *converter) peerASN(o *object, s *bgpPeerSpec, p *outPeer) {
	switch {
	case s.PeerASN != 0 && s.DynamicASN != "":
		c.errorf(o, "spec.dynamicASN", "set together with peerASN; MetalLB refuses that, give one")
	case s.PeerASN != 0:
		p.asn = s.PeerASN
	case s.DynamicASN == "internal" && s.MyASN != 0:
		p.asn = s.MyASN
		p.addNote(fmt.Sprintf("dynamicASN: internal, so the router's AS is this cluster's (%d): an iBGP session", s.MyASN))
	case s.DynamicASN == "external":
		c.errorf(o, "spec.dynamicASN", "external: lbd needs the router's AS number; set peerASN to it")
	case s.DynamicASN != "":
		c.errorf(o, "spec.dynamicASN", "%q is neither internal nor external", s.DynamicASN)
	default:
		c.errorf(o, "spec.peerASN", "missing; lbd needs the router's AS number")
	}
}

func (c *converter) peerAddresses(o *object, s *bgpPeerSpec, p *outPeer) {
	switch a, err := netip.ParseAddr(s.PeerAddress); {
	case s.PeerAddress == "" && s.Interface != "":
		c.errorf(o, "spec.interface", "unnumbered BGP over interface %q is not supported by lbd; give the router's address in peerAddress", s.Interface)
	case s.PeerAddress == "":
		c.errorf(o, "spec.peerAddress", "missing; lbd needs the router's address")
	case err != nil:
		c.errorf(o, "spec.peerAddress", "%q is not an IP address", s.PeerAddress)
	default:
		p.address = a.String()
		if s.Interface != "" {
			p.addNote(c.warn(o, "spec.interface", "ignored: lbd dials peerAddress %s and lets the kernel choose the interface", a))
		}
	}
	if s.SourceAddress != "" {
		a, err := netip.ParseAddr(s.SourceAddress)
		if err != nil {
			c.errorf(o, "spec.sourceAddress", "%q is not an IP address", s.SourceAddress)
		} else {
			p.sourceAddress = a.String()
		}
	}
}

// peerTimers carries over the hold, keepalive and connect timers the way
// MetalLB completes them: one of hold and keepalive given means the other is
// three times more or less. In v1beta1 a zero duration meant "unset".
func (c *converter) peerTimers(o *object, s *bgpPeerSpec, p *outPeer) {
	hold := c.duration(o, "spec.holdTime", s.HoldTime)
	ka := c.duration(o, "spec.keepaliveTime", s.KeepaliveTime)
	if o.Version == "v1beta1" {
		if hold != nil && *hold == 0 {
			hold = nil
		}
		if ka != nil && *ka == 0 {
			ka = nil
		}
	}
	switch {
	case hold != nil && ka != nil:
		p.hold, p.keepalive = hold, ka
	case hold != nil:
		p.hold = hold // lbd's keepalive default is hold_time/3, as MetalLB's
	case ka != nil:
		h := 3 * *ka
		p.hold, p.keepalive = &h, ka
		p.addNote("hold_time is 3 × keepaliveTime, as MetalLB derives it when holdTime is unset")
	}
	p.connectRetry = c.duration(o, "spec.connectTime", s.ConnectTime)
}

// duration parses a Kubernetes duration ("90s", "1m30s"); nil when empty.
func (c *converter) duration(o *object, field, s string) *time.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errorf(o, field, "%q is not a duration such as 90s or 1m30s", s)
		return nil
	}
	return &d
}

func (c *converter) peerSelector(o *object, s *bgpPeerSpec, p *outPeer) {
	sels := nodeSelectors(s.NodeSelectors)
	if len(sels) == 0 {
		return
	}
	p.nodeSelector = sels[0]
	if len(sels) > 1 {
		p.addNote(c.warn(o, "spec.nodeSelectors", "%d selectors, of which any may match; lbd has one node_selector per peer and cannot split a peer (one session per router address), so only nodeSelectors[0] is kept and nodes matching only the others no longer peer with this router; merge them into one selector if that is wrong", len(sels)))
	}
}

// peerPassword points the peer at a password file: lbd never holds the
// password in its configuration, and the converter never writes it out.
func (c *converter) peerPassword(o *object, s *bgpPeerSpec, p *outPeer) {
	if s.Password == "" && s.PasswordSecret.Name == "" {
		return
	}
	p.passwordFile = "/etc/lbd/bgp-password-" + p.name
	c.passwordFiles = append(c.passwordFiles, p.passwordFile)
	if s.Password != "" {
		p.addNote(c.warn(o, "spec.password", "not copied: lbd reads the TCP MD5 password from password_file %s, which you must create on every node (mode 0600, holding the password) before lbd starts", p.passwordFile))
	}
	if s.PasswordSecret.Name != "" {
		ns := firstOf(s.PasswordSecret.Namespace, o.Meta.Namespace, "metallb-system")
		p.addNote(c.warn(o, "spec.passwordSecret", "lbd reads no Secrets: create password_file %s on every node (mode 0600) from key password of Secret %s/%s, e.g. (umask 077; kubectl get secret -n %s %s -o jsonpath='{.data.password}' | base64 -d > %s), or have Vault Agent write it",
			p.passwordFile, ns, s.PasswordSecret.Name, ns, s.PasswordSecret.Name, p.passwordFile))
	}
}

// peerExtras handles the fields lbd has no exact counterpart for.
func (c *converter) peerExtras(o *object, s *bgpPeerSpec, p *outPeer) {
	if s.EBGPMultiHop {
		if p.asn != 0 && p.asn == s.MyASN {
			p.addNote(c.warn(o, "spec.ebgpMultiHop", "ignored: this is an iBGP peer (its AS is myASN) and lbd's ebgp_multihop applies to eBGP only; iBGP sessions are not limited to one hop anyway"))
		} else {
			p.multihop = 255
			p.addNote("ebgp_multihop: 255 from ebgpMultiHop: true, as MetalLB's FRR sets ebgp-multihop without a hop count (TTL 255)")
		}
	}
	if s.VRF != "" {
		p.addNote(c.warn(o, "spec.vrf", "%q not carried over: lbd peers from the default VRF (the main routing table), which may not reach this router", s.VRF))
	}
	if s.DisableMP {
		p.addNote(c.warn(o, "spec.disableMP", "not carried over: lbd has no such setting; its speaker negotiates the address families of the session itself"))
	}
	if s.DualStackAddressFamily {
		p.addNote(c.warn(o, "spec.dualStackAddressFamily", "not carried over: lbd has no such setting; its speaker negotiates the address families of the session itself"))
	}
	if !s.EnableGracefulRestart {
		p.addNote("graceful restart off, as in MetalLB (enableGracefulRestart false or unset); lbd's default is on, so the router keeps the routes while lbd restarts")
	}
}

// peerRouterID turns the peers' routerIDs into lbd's one bgp.router_id.
func (c *converter) peerRouterID(ids map[string]*object) {
	switch len(ids) {
	case 0:
		return
	case 1:
		for id, o := range ids {
			c.routerID, c.routerFrom = id, o
		}
		for _, p := range c.peers {
			if p.src.Spec.(*bgpPeerSpec).RouterID == "" {
				p.addNote(c.warn(p.src, "spec.routerID", "unset here, but lbd's bgp.router_id (%s, from %s) applies to every peer, this one too", c.routerID, c.routerFrom.ID()))
			}
		}
	default:
		for _, p := range c.peers {
			if id := p.src.Spec.(*bgpPeerSpec).RouterID; id != "" {
				p.addNote(c.warn(p.src, "spec.routerID", "%s not carried over: lbd has one router ID for all peers and the BGPPeers give %d different ones; left out, each node uses its own address", id, len(ids)))
			}
		}
	}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
