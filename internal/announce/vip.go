package announce

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MinVIPLifetime is the shortest lifetime NewVIP accepts: the kernel counts
// address lifetimes in whole seconds.
const MinVIPLifetime = time.Second

// VIP announces the control-plane VIP by adding it to an interface with
// netlink, as a host address (/32 or /128) with a finite lifetime. The
// caller (the leader) calls Set on each successful lease renewal, which
// renews the lifetime; if lbd is killed and nobody renews it, the kernel
// removes the address by itself when the lifetime runs out. IPv6 addresses
// are added with IFA_F_NODAD, so they are usable at once.
//
// VIP sends no gratuitous ARP or unsolicited Neighbor Advertisement: a
// Herald does that (the kernel answers requests, the address being local).
// It works in the network namespace of the
// process. Set and Close hold a mutex; VIP starts no goroutine.
type VIP struct {
	log      *slog.Logger
	lifetime time.Duration

	mu     sync.Mutex
	closed bool
	added  map[vipKey]struct{}
}

type vipKey struct {
	addr  netip.Addr
	iface string
}

var _ Announcer = (*VIP)(nil)

// NewVIP builds a VIP announcer whose addresses live for lifetime unless
// renewed by Set; a lifetime of three renew intervals survives two missed
// renewals. lifetime is rounded up to whole seconds and must be at least
// MinVIPLifetime. NewVIP touches no interface.
func NewVIP(log *slog.Logger, lifetime time.Duration) (*VIP, error) {
	if lifetime < MinVIPLifetime || lifetime.Seconds() >= math.MaxUint32 {
		return nil, fmt.Errorf("VIP lifetime %v: must be between %v and %v", lifetime, MinVIPLifetime, time.Duration(math.MaxUint32-1)*time.Second)
	}
	return &VIP{log: log, lifetime: lifetime, added: map[vipKey]struct{}{}}, nil
}

// Set adds (or re-adds, renewing the lifetime of) every desired address and
// removes at once the addresses it added before that are no longer desired.
// An address removed by someone else is added again. Addresses it could not
// add or remove are reported in the joined error; the next Set retries them.
func (v *VIP) Set(desired []Announcement) error {
	want := map[vipKey]struct{}{}
	var errs []error
	for _, a := range desired {
		k := vipKey{addr: a.Addr.Unmap(), iface: a.Interface}
		if err := checkVIP(k); err != nil {
			errs = append(errs, err)
			continue
		}
		want[k] = struct{}{}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	for k := range v.added {
		if _, ok := want[k]; ok {
			continue
		}
		if err := delHostAddr(k.iface, k.addr); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(v.added, k)
		v.log.Info("VIP removed", "ip", k.addr, "iface", k.iface)
	}
	secs := int(math.Ceil(v.lifetime.Seconds()))
	for k := range want {
		if err := replaceHostAddr(k.iface, k.addr, secs); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := v.added[k]; !ok {
			v.log.Info("VIP added", "ip", k.addr, "iface", k.iface, "lifetime", time.Duration(secs)*time.Second)
		}
		v.added[k] = struct{}{}
	}
	return errors.Join(errs...)
}

// Close removes every address the announcer added. Later Sets fail with
// ErrClosed; Close is idempotent.
func (v *VIP) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	var errs []error
	for k := range v.added {
		if err := delHostAddr(k.iface, k.addr); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(v.added, k)
		v.log.Info("VIP removed", "ip", k.addr, "iface", k.iface)
	}
	return errors.Join(errs...)
}

// RemoveStale removes the host addresses (/32 or /128) addrs from iface, as
// a VIP announcer would have added them: for start-up and `lbd cleanup`,
// after an lbd that may not have closed its announcer. Addresses that are
// absent, or an absent interface, are not errors.
func RemoveStale(iface string, addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		k := vipKey{addr: a.Unmap(), iface: iface}
		if err := checkVIP(k); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := delHostAddr(k.iface, k.addr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkVIP(k vipKey) error {
	if !k.addr.IsValid() || k.addr.Zone() != "" || k.addr.IsMulticast() || k.addr.IsUnspecified() || k.addr.IsLoopback() || k.iface == "" {
		return fmt.Errorf("VIP %v on %q: not a usable address and interface", k.addr, k.iface)
	}
	return nil
}

// hostAddr is addr as a netlink host address, the only place net.IP is used.
func hostAddr(addr netip.Addr) *netlink.Addr {
	bits := addr.BitLen()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(bits, bits)}}
	if addr.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func replaceHostAddr(iface string, addr netip.Addr, secs int) error {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("add VIP %s on %s: %w", addr, iface, err)
	}
	a := hostAddr(addr)
	a.ValidLft, a.PreferedLft = secs, secs
	if err := netlink.AddrReplace(link, a); err != nil {
		return fmt.Errorf("add VIP %s on %s: %w", addr, iface, err)
	}
	return nil
}

// delHostAddr removes addr's host address from iface; absent is not an error.
func delHostAddr(iface string, addr netip.Addr) error {
	link, err := netlink.LinkByName(iface)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove VIP %s from %s: %w", addr, iface, err)
	}
	if err := netlink.AddrDel(link, hostAddr(addr)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove VIP %s from %s: %w", addr, iface, err)
	}
	return nil
}
