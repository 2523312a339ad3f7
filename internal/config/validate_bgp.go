package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func validateBGP(c *Config, v *validator, o Options) {
	b := &c.BGP
	if len(b.Peers) == 0 && len(b.Advertisements) == 0 {
		return
	}
	if b.ASN == 0 {
		if _, written := v.pos["bgp.asn"]; !written {
			v.errorf("bgp.asn", "", "required: this cluster's AS number (e.g. 64512)")
		} else {
			v.errorf("bgp.asn", "0", "AS 0 is reserved (RFC 7607); use 1-4294967295, private 64512-65534 or 4200000000-4294967294")
		}
	} else {
		asn(v, "bgp.asn", b.ASN)
	}
	if b.RouterID.IsValid() && (!b.RouterID.Is4() || b.RouterID.IsUnspecified()) {
		v.errorf("bgp.router_id", b.RouterID.String(), "a router ID is a non-zero IPv4 address; leave it out to use the node's address")
	}
	if len(b.Advertisements) > 0 && len(b.Peers) == 0 {
		v.errorf("bgp.peers", "", "bgp.advertisements are set but there are no peers to announce to")
	}
	peerNames := map[string]int{}
	peerAddrs := map[string]int{}
	for i := range b.Peers {
		validatePeer(v, o, c, i, peerNames, peerAddrs)
	}
	names := map[string]int{}
	for i, a := range b.Advertisements {
		path := fmt.Sprintf("bgp.advertisements[%d]", i)
		uniqueName(v, names, "bgp.advertisements", i, a.Name, "advertisement", "a name to tell advertisements apart in logs and status")
		poolRefs(c, v, path, a.Pools)
		aggregation(c, v, path+".aggregation_length", a.AggregationLength, a.Pools, 32)
		aggregation(c, v, path+".aggregation_length_v6", a.AggregationLengthV6, a.Pools, 128)
		for j, name := range a.Peers {
			if _, ok := peerNames[name]; !ok {
				v.errorf(fmt.Sprintf("%s.peers[%d]", path, j), name, "no peer has this name; known peers: %s", listOrNone(slices.Sorted(maps.Keys(peerNames))))
			}
		}
		a.NodeSelector.validate(v, path+".node_selector")
	}
}

func validatePeer(v *validator, o Options, c *Config, i int, names, addrs map[string]int) {
	b := &c.BGP
	p := b.Peers[i]
	path := fmt.Sprintf("bgp.peers[%d]", i)
	uniqueName(v, names, "bgp.peers", i, p.Name, "peer", "a name for logs, metrics and advertisements")
	if !p.Address.IsValid() {
		v.errorf(path+".address", "", "required: the peer's IP address")
	} else if p.Address.Is6() && p.Address.IsLinkLocalUnicast() {
		v.errorf(path+".address", p.Address.String(), "an IPv6 link-local peer needs an interface (zone) that lbd cannot take; use the router's global or unique-local address")
	} else if msg := unicastProblem(p.Address); msg != "" {
		v.errorf(path+".address", p.Address.String(), "%s", msg)
	} else if c.ControlPlane != nil && slices.Contains(c.ControlPlane.Addresses, p.Address) {
		v.errorf(path+".address", p.Address.String(), "is the control-plane VIP; a BGP peer is the router, not this cluster's VIP")
	} else if pool, pi, ri, ok := c.poolRange(p.Address); ok {
		v.errorf(path+".address", p.Address.String(), "the BGP peer's address lies inside pool %q (pools[%d].addresses[%d] %s); a Service could be given the router's address", pool.Name, pi, ri, pool.Addresses[ri])
	} else if prev, dup := addrs[p.Address.String()]; dup {
		v.errorf(path+".address", p.Address.String(), "a second peer at the same address (also bgp.peers[%d])", prev)
	} else {
		addrs[p.Address.String()] = i
	}
	if p.ASN == 0 {
		v.errorf(path+".asn", "", "required: the peer's AS number (1-4294967295)")
	} else {
		asn(v, path+".asn", p.ASN)
	}
	if p.Port == 0 {
		v.errorf(path+".port", "0", "must be a TCP port 1-65535 (BGP uses 179)")
	}
	hold, ka := p.HoldTime, p.Keepalive
	switch {
	case hold != 0 && hold < 3*time.Second:
		v.errorf(path+".hold_time", hold.String(), "must be 0 (no keepalives) or at least 3s (RFC 4271)")
	case hold > 65535*time.Second:
		v.errorf(path+".hold_time", hold.String(), "must be at most 65535s")
	case hold%time.Second != 0:
		v.errorf(path+".hold_time", hold.String(), "BGP carries whole seconds; use e.g. %s", hold.Round(time.Second))
	}
	switch {
	case hold == 0 && ka != 0:
		v.errorf(path+".keepalive", ka.String(), "must be 0 when hold_time is 0")
	case hold != 0 && ka == 0:
		v.errorf(path+".keepalive", "0s", "must be more than 0 when hold_time is set; usually hold_time/3 (%s)", hold/3)
	case ka > hold:
		v.errorf(path+".keepalive", ka.String(), "must not be longer than hold_time (%s); usually hold_time/3", hold)
	case ka%time.Second != 0:
		v.errorf(path+".keepalive", ka.String(), "BGP keepalives are whole seconds; use e.g. %s", ka.Round(time.Second))
	}
	if p.ConnectRetry < time.Second {
		v.errorf(path+".connect_retry", p.ConnectRetry.String(), "must be at least 1s")
	}
	if p.SourceAddress.IsValid() && p.Address.IsValid() && p.SourceAddress.Is4() != p.Address.Is4() {
		v.errorf(path+".source_address", p.SourceAddress.String(), "is IPv%d but the peer address %s is IPv%d", family(p.SourceAddress), p.Address, family(p.Address))
	} else if pool, pi, ri, ok := c.poolRange(p.SourceAddress); ok {
		v.errorf(path+".source_address", p.SourceAddress.String(), "this node's source address lies inside pool %q (pools[%d].addresses[%d] %s); a Service could be given it", pool.Name, pi, ri, pool.Addresses[ri])
	}
	if p.EBGPMultihop < 0 || p.EBGPMultihop > 255 {
		v.errorf(path+".ebgp_multihop", strconv.Itoa(p.EBGPMultihop), "must be a TTL 1-255, or 0 for a directly connected peer")
	} else if p.EBGPMultihop > 0 && p.ASN != 0 && p.ASN == b.ASN {
		v.errorf(path+".ebgp_multihop", strconv.Itoa(p.EBGPMultihop), "applies to eBGP only, but this peer's ASN equals bgp.asn (%d): it is an iBGP peer", b.ASN)
	}
	if p.PasswordFile != "" {
		passwordFile(v, o, path+".password_file", p.PasswordFile, &b.Peers[i])
	}
	if rt := p.GracefulRestart.RestartTime; p.GracefulRestart.IsEnabled() && (rt < time.Second || rt > 4095*time.Second || rt%time.Second != 0) {
		v.errorf(path+".graceful_restart.restart_time", rt.String(), "must be whole seconds from 1s to 4095s (RFC 4724)")
	}
	p.NodeSelector.validate(v, path+".node_selector")
	if b := p.BFD; b != nil {
		for _, iv := range []struct {
			key string
			d   time.Duration
		}{{"transmit_interval", b.TransmitInterval}, {"receive_interval", b.ReceiveInterval}} {
			if iv.d < 10*time.Millisecond || iv.d > time.Minute {
				v.errorf(path+".bfd."+iv.key, iv.d.String(), "must be 10ms-1m (usually 300ms; docs/bgp.md says how to pick it)")
			} else if iv.d%time.Microsecond != 0 {
				v.errorf(path+".bfd."+iv.key, iv.d.String(), "BFD carries microseconds; use e.g. %s", iv.d.Round(time.Millisecond))
			}
		}
		if b.DetectMultiplier < 1 || b.DetectMultiplier > 255 {
			v.errorf(path+".bfd.detect_multiplier", strconv.Itoa(b.DetectMultiplier), "must be 1-255 (usually 3)")
		}
		if p.EBGPMultihop > 0 {
			v.errorf(path+".bfd", "", "BFD here is single hop (RFC 5881): the peer must be directly connected, but ebgp_multihop is %d", p.EBGPMultihop)
		}
	}
}

// passwordFile checks the MD5 password file the way the daemon reads it
// (ReadPassword), and notes the password's fingerprint so that a changed
// password makes a reload that changes something.
func passwordFile(v *validator, o Options, path, name string, p *Peer) {
	if !filepath.IsAbs(name) || strings.ContainsAny(name, " \t\n") {
		// Often the password itself, written where its file belongs:
		// never repeat it (this text reaches the journal on reload).
		v.errorf(path, "", "must be the absolute path of a file holding the password (the value written is not shown: it may be the password itself)")
		return
	}
	if o.Offline {
		return // named in Config.Skipped
	}
	pw, err := readPassword(o.Open, name)
	if err != nil {
		v.errorf(path, name, "%v", err)
		return
	}
	p.PasswordFingerprint = Fingerprint(pw)
}

func trimPathErr(err error) string {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap().Error()
	}
	return err.Error()
}

func asn(v *validator, path string, n uint32) {
	switch n {
	case ASTrans:
		v.errorf(path, strconv.FormatUint(uint64(n), 10), "AS 23456 is AS_TRANS (RFC 6793), not a real AS number")
	case 65535, 4294967295:
		v.errorf(path, strconv.FormatUint(uint64(n), 10), "AS %d is reserved (RFC 7300); private AS numbers are 64512-65534 and 4200000000-4294967294", n)
	}
}

// aggregation checks an aggregation length against the family's maximum and
// against every CIDR of the pools it covers: a shorter length would announce
// addresses outside the pool.
func aggregation(c *Config, v *validator, path string, n int, pools []string, max int) {
	if n < 1 || n > max {
		v.errorf(path, strconv.Itoa(n), "must be 1-%d", max)
		return
	}
	for _, name := range pools {
		for _, pool := range c.Pools {
			if pool.Name != name {
				continue
			}
			for _, r := range pool.Addresses {
				if !r.From.IsValid() || r.From.BitLen() != max {
					continue
				}
				for _, pfx := range r.Prefixes() {
					if n < pfx.Bits() {
						v.errorf(path, strconv.Itoa(n), "is shorter than /%d, the size of %s in pool %q, so the route would cover addresses outside the pool; use %d-%d", pfx.Bits(), pfx, name, pfx.Bits(), max)
						return
					}
				}
			}
		}
	}
}
