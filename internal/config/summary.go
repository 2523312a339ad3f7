package config

import (
	"fmt"
	"math/bits"
	"strings"
)

// Summary describes a configuration in one line, for `lbd check` and logs.
func (c *Config) Summary() string {
	parts := []string{"node " + c.Node.Name}
	if cp := c.ControlPlane; cp != nil {
		parts = append(parts, fmt.Sprintf("control-plane VIP %s on %s", JoinAddrs(cp.Addresses), cp.Interface))
	}
	var v4, v6 uint64
	for _, p := range c.Pools {
		for _, r := range p.Addresses {
			if r.Is4() {
				v4 = satAdd(v4, r.Size())
			} else {
				v6 = satAdd(v6, r.Size())
			}
		}
	}
	pools := fmt.Sprintf("%d pool%s", len(c.Pools), plural(len(c.Pools)))
	var sizes []string
	if v4 > 0 {
		sizes = append(sizes, fmt.Sprintf("%d IPv4", v4))
	}
	if v6 > 0 {
		sizes = append(sizes, humanCount(v6)+" IPv6")
	}
	if len(sizes) > 0 {
		pools += " (" + strings.Join(sizes, ", ") + " addresses)"
	}
	parts = append(parts, pools)
	if n := len(c.L2.Advertisements); n > 0 {
		parts = append(parts, fmt.Sprintf("%d L2 advertisement%s", n, plural(n)))
	}
	if n := len(c.BGP.Peers); n > 0 {
		parts = append(parts, fmt.Sprintf("BGP AS%d with %d peer%s", c.BGP.ASN, n, plural(n)))
	}
	if p := c.Peers; p != nil {
		parts = append(parts, fmt.Sprintf("peer detection on UDP and TCP %d (open it between the nodes)", p.Port))
	}
	return strings.Join(parts, "; ")
}

// Size is the number of addresses in r, saturating at the maximum uint64.
func (r Range) Size() uint64 {
	a, b := r.From.As16(), r.To.As16()
	hiA, loA := be64(a[:8]), be64(a[8:])
	hiB, loB := be64(b[:8]), be64(b[8:])
	lo, borrow := bits.Sub64(loB, loA, 0)
	hi, _ := bits.Sub64(hiB, hiA, borrow)
	if hi != 0 || lo == ^uint64(0) {
		return ^uint64(0)
	}
	return lo + 1
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}

func humanCount(n uint64) string {
	if n == ^uint64(0) {
		return "≥2^64"
	}
	return fmt.Sprint(n)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
