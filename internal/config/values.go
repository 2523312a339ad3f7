package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Range is a contiguous span of addresses of one family, written in the
// file as a CIDR ("192.0.2.0/28"), a range ("192.0.2.10-192.0.2.20") or a
// single address.
type Range struct {
	From, To netip.Addr
	// Prefix is set when the range was written as a CIDR.
	Prefix netip.Prefix
}

// ParseRange parses one entry of a pool's addresses list.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address range; write a CIDR (192.0.2.0/28), a range (192.0.2.10-192.0.2.20) or one address")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("not a CIDR: %s", trimNetipErr(err))
		}
		if err := plainAddr(p.Addr()); err != nil {
			return Range{}, err
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("CIDR has host bits set; did you mean %s?", p.Masked())
		}
		return Range{From: p.Addr(), To: lastAddr(p), Prefix: p}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err := parsePlainAddr(strings.TrimSpace(from))
		if err != nil {
			return Range{}, fmt.Errorf("range start: %w", err)
		}
		b, err := parsePlainAddr(strings.TrimSpace(to))
		if err != nil {
			if full, ok := fullRangeEnd(a, strings.TrimSpace(to)); ok {
				return Range{}, fmt.Errorf("write the end of a range in full: %s-%s", a, full)
			}
			return Range{}, fmt.Errorf("range end: %w", err)
		}
		if a.Is4() != b.Is4() {
			return Range{}, fmt.Errorf("range spans two address families (%s is IPv%d, %s is IPv%d); write one range per family", a, family(a), b, family(b))
		}
		if b.Less(a) {
			return Range{}, fmt.Errorf("range start is after its end; did you mean %s-%s?", b, a)
		}
		return Range{From: a, To: b}, nil
	}
	a, err := parsePlainAddr(s)
	if err != nil {
		return Range{}, err
	}
	return Range{From: a, To: a}, nil
}

// fullRangeEnd reads an IPv4 range end written as a shorthand of its
// last octets (192.0.2.200-250, 192.0.2.200-3.10), as some tools allow,
// and returns the address meant.
func fullRangeEnd(from netip.Addr, end string) (netip.Addr, bool) {
	if !from.Is4() {
		return netip.Addr{}, false
	}
	parts := strings.Split(end, ".")
	if len(parts) > 2 {
		return netip.Addr{}, false
	}
	b := from.As4()
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		b[4-len(parts)+i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Range) UnmarshalText(b []byte) error {
	v, err := ParseRange(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Range) String() string {
	switch {
	case r.Prefix.IsValid():
		return r.Prefix.String()
	case r.From == r.To:
		return r.From.String()
	default:
		return r.From.String() + "-" + r.To.String()
	}
}

// Is4 reports whether the range holds IPv4 addresses.
func (r Range) Is4() bool { return r.From.Is4() }

// Contains reports whether a lies in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.From.BitLen() && r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.From.BitLen() == o.From.BitLen() && r.From.Compare(o.To) <= 0 && o.From.Compare(r.To) <= 0
}

// Prefixes returns the smallest set of CIDRs that exactly covers the range.
func (r Range) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	from := r.From
	for {
		bits := from.BitLen()
		// Grow the prefix while it stays aligned at from and inside r.
		for bits > 0 {
			p := netip.PrefixFrom(from, bits-1)
			if p.Masked().Addr() != from || r.To.Less(lastAddr(p)) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(from, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last == r.To {
			return out
		}
		from = last.Next()
	}
}

// lastAddr returns the highest address in p.
// JoinAddrs writes addresses as one list ("192.0.2.1, 2001:db8::1"): the
// one form lbd's messages, Events and logs use.
func JoinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func parsePlainAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address: %s", trimNetipErr(err))
	}
	return a, plainAddr(a)
}

// plainAddr refuses address forms that would be ambiguous in a pool or VIP.
func plainAddr(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("address %s has a zone; remove %%%s", a, a.Zone())
	case a.Is4In6():
		return fmt.Errorf("IPv4-mapped IPv6 address %s; write the IPv4 address %s", a, a.Unmap())
	}
	return nil
}

// trimNetipErr removes the quoted input netip repeats; the caller's message
// already shows the value.
func trimNetipErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		return msg[i+3:]
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// Community is a standard BGP community (RFC 1997), written "ASN:VALUE" with
// two 16-bit numbers, or by a well-known name such as "no-export".
type Community uint32

var wellKnownCommunities = map[string]Community{
	"graceful-shutdown":   0xFFFF0000,
	"blackhole":           0xFFFF029A,
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Community) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		*c = v
		return nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 2 {
		return fmt.Errorf("not a standard community; write ASN:VALUE with two numbers 0-65535 (e.g. 64512:100) or a well-known name (no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown); large communities go in large_communities")
	}
	var v uint32
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return fmt.Errorf("community part %q is not a number 0-65535", p)
		}
		v = v<<16 | uint32(n)
	}
	*c = Community(v)
	return nil
}

func (c Community) String() string {
	for name, v := range wellKnownCommunities {
		if v == c {
			return name
		}
	}
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xFFFF)
}

// LargeCommunity is a BGP large community (RFC 8092): "GLOBAL:DATA1:DATA2"
// with three 32-bit numbers.
type LargeCommunity struct{ Global, Data1, Data2 uint32 }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *LargeCommunity) UnmarshalText(b []byte) error {
	parts := strings.Split(strings.TrimSpace(string(b)), ":")
	if len(parts) != 3 {
		return fmt.Errorf("not a large community; write GLOBAL:DATA1:DATA2 with three numbers 0-4294967295 (e.g. 64512:1:100)")
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return fmt.Errorf("large community part %q is not a number 0-4294967295", p)
		}
		v[i] = uint32(n)
	}
	*c = LargeCommunity{v[0], v[1], v[2]}
	return nil
}

func (c LargeCommunity) String() string { return fmt.Sprintf("%d:%d:%d", c.Global, c.Data1, c.Data2) }

// LogLevel is the least severe level that is logged.
type LogLevel string

// LogFormat selects the log encoding.
type LogFormat string

// Log levels and formats.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"

	// LogAuto writes journald-friendly text under systemd and plain text
	// on a terminal.
	LogAuto LogFormat = "auto"
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LogLevel) UnmarshalText(b []byte) error {
	switch v := LogLevel(b); v {
	case LogDebug, LogInfo, LogWarn, LogError:
		*l = v
		return nil
	}
	return fmt.Errorf("unknown log level; use debug, info, warn or error")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch v := LogFormat(b); v {
	case LogAuto, LogText, LogJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown log format; use auto, text or json")
}
