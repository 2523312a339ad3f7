package announce

import (
	"net/netip"
	"slices"
	"time"
)

// owners is an immutable snapshot of which interfaces announce which
// address. The responders read it without locks; Set publishes a new one.
type owners map[netip.Addr][]string

// lookup reports whether addr is announced on iface, and on any interface.
func (o owners) lookup(addr netip.Addr, iface string) (here, anywhere bool) {
	ifaces, ok := o[addr]
	return slices.Contains(ifaces, iface), ok
}

// gratuitousDelay returns the wait before the i-th (from 0) unsolicited
// packet for a newly taken address: Count packets Interval apart, the first
// at once, then one every Refresh; ok is false when there is no i-th packet.
func gratuitousDelay(count int, interval, refresh time.Duration, i int) (d time.Duration, ok bool) {
	switch {
	case i == 0 && count > 0:
		return 0, true
	case i < count:
		return interval, true
	case refresh > 0:
		return refresh, true
	}
	return 0, false
}
