package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// warn records what is legal but probably wrong. It runs on a valid
// configuration only. The checks of the machine itself (interfaces, the
// kubeconfig) are skipped, and named in v.skipped, when o.Offline.
func warn(c *Config, v *validator, o Options) {
	if k, ok := v.nulls["control_plane"]; ok && c.ControlPlane == nil {
		v.pos["control_plane"] = k
		v.warnf("control_plane", "", "is empty, so this node runs no control-plane VIP; remove the key if that is meant, or add addresses and interface under it")
	}
	for i, p := range c.Pools {
		if p.AvoidBuggyIPs {
			continue
		}
		for j, r := range p.Addresses {
			if a, ok := buggyIn(r); ok {
				v.warnf(fmt.Sprintf("pools[%d].addresses[%d]", i, j), r.String(), "includes %s, an address ending in .0 or .255: often a subnet's network or broadcast address, which some clients cannot reach; set avoid_buggy_ips: true on the pool to skip such addresses", a)
				break
			}
		}
	}
	if id := c.BGP.RouterID; id.IsValid() {
		if pool, pi, ri, ok := c.poolRange(id); ok {
			v.warnf("bgp.router_id", id.String(), "lies inside pool %q (pools[%d].addresses[%d] %s); a router ID is usually one of the node's own addresses", pool.Name, pi, ri, pool.Addresses[ri])
		}
	}
	for i, p := range c.BGP.Peers {
		if k, ok := v.nulls[fmt.Sprintf("bgp.peers[%d].bfd", i)]; ok && p.BFD == nil {
			v.pos[fmt.Sprintf("bgp.peers[%d].bfd", i)] = k
			v.warnf(fmt.Sprintf("bgp.peers[%d].bfd", i), "", "is empty, so no BFD runs with this peer; write bfd: {} for BFD with the default timers (300ms x 3)")
		}
		if p.HoldTime != 0 && p.Keepalive == p.HoldTime {
			v.warnf(fmt.Sprintf("bgp.peers[%d].keepalive", i), p.Keepalive.String(), "equals hold_time: one lost keepalive drops the session; use a third of hold_time (%s)", defaultKeepalive(p.HoldTime))
		}
	}
	var ifaces []string
	for i, a := range c.L2.Advertisements {
		for j, name := range a.Interfaces {
			path := fmt.Sprintf("l2.advertisements[%d].interfaces[%d]", i, j)
			if strings.ContainsAny(name, `*?[]+^$()|\{}`) {
				v.warnf(path, name, "looks like a pattern, but interface names are taken literally; list each interface by name")
			}
			ifaces = append(ifaces, path+"\x00"+name)
		}
	}
	if cp := c.ControlPlane; cp != nil {
		ifaces = append(ifaces, "control_plane.interface\x00"+cp.Interface)
	}
	if o.Offline {
		v.skipped = append(v.skipped, "password files (read, private, one line)", "the kubeconfig file exists", "interfaces exist on this machine")
		return
	}
	if f, err := o.Open(c.Kubernetes.Kubeconfig); err != nil {
		v.warnf("kubernetes.kubeconfig", c.Kubernetes.Kubeconfig, "cannot be read yet (%s): lbd waits for it (kubeadm writes it while joining)", trimPathErr(err))
	} else {
		f.Close()
	}
	if len(ifaces) == 0 {
		return
	}
	have, err := o.Interfaces()
	if err != nil {
		return
	}
	for _, pn := range ifaces {
		path, name, _ := strings.Cut(pn, "\x00")
		if !contains(have, name) {
			v.warnf(path, name, "no such interface on this machine (it has %s); lbd will not announce on it here", strings.Join(have, ", "))
		}
	}
}

// buggyIn returns an IPv4 address ending in .0 or .255 within r.
func buggyIn(r Range) (netip.Addr, bool) {
	if !r.From.Is4() {
		return netip.Addr{}, false
	}
	b := r.From.As4()
	switch {
	case b[3] == 0 || b[3] == 255:
		return r.From, true
	case r.To.As4()[3] == 0 || r.To.As4()[3] == 255:
		return r.To, true
	}
	// A range crossing a .255/.0 boundary holds both.
	b[3] = 255
	if a := netip.AddrFrom4(b); r.Contains(a) {
		return a, true
	}
	return netip.Addr{}, false
}
