package announce

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/config"
)

// ErrClosed is returned by Set after Close.
var ErrClosed = errors.New("announcer closed")

// L2 announces addresses at layer 2: on each interface that has an address
// to announce it answers ARP requests (IPv4) and Neighbor Solicitations
// (IPv6) for it with the interface's MAC, and sends gratuitous ARP or
// unsolicited Neighbor Advertisements when it takes an address. It never
// adds addresses to interfaces.
//
// Set and Close hold a mutex, so the link table has one writer at a time;
// the responder goroutines read only an immutable ownership snapshot.
type L2 struct {
	log     *slog.Logger
	clock   Clock
	grat    config.Gratuitous
	dropped *prometheus.CounterVec
	// ifaceByName is net.InterfaceByName; a field so tests can fail it.
	ifaceByName func(string) (*net.Interface, error)

	// now stamps conflicts and recent withdrawals; a field for tests.
	now            func() time.Time
	conflictsTotal *prometheus.CounterVec

	// owners: announced claims, answered by the responders. watched:
	// every claim while conflict detection is on, for observe.
	owners  atomic.Pointer[owners]
	watched atomic.Pointer[owners]
	peers   atomic.Pointer[peerSet]
	wg      sync.WaitGroup
	// cbMu makes the conflict callbacks run one at a time.
	cbMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	started bool
	links   map[string]*link
	// Conflict detection, set by DetectConflicts before the first Set.
	detect              bool
	probe               config.ConflictProbe
	onConflict, onClear func(Conflict)
	conflicts           map[claimKey]*Conflict
	// recent holds when an announced address was last withdrawn.
	recent map[claimKey]time.Time
}

var _ Announcer = (*L2)(nil)

// NewL2 builds an L2 announcer. It opens no socket and starts no goroutine;
// the first Set does. g says how many gratuitous packets to send on taking
// an address. The drop counter lbd_l2_dropped_total is registered with reg
// (nil: not registered), and so is lbd_l2_conflicts_total. Conflict
// detection is off until DetectConflicts.
func NewL2(log *slog.Logger, clock Clock, g config.Gratuitous, reg prometheus.Registerer) (*L2, error) {
	dropped, err := newDroppedCounter(reg)
	if err != nil {
		return nil, fmt.Errorf("L2 announcer metrics: %w", err)
	}
	conflicts, err := newConflictsCounter(reg)
	if err != nil {
		return nil, fmt.Errorf("L2 announcer metrics: %w", err)
	}
	l := &L2{
		now:            time.Now,
		conflictsTotal: conflicts,
		conflicts:      map[claimKey]*Conflict{},
		recent:         map[claimKey]time.Time{},
		log:            log,
		clock:          clock,
		grat:           g,
		dropped:        dropped,
		ifaceByName:    net.InterfaceByName,
		links:          map[string]*link{},
	}
	l.owners.Store(&owners{})
	l.watched.Store(&owners{})
	l.peers.Store(&peerSet{})
	return l, nil
}

// Set makes desired the announced set: it opens sockets on interfaces that
// gain their first address, joins solicited-node groups, starts a
// gratuitous burst for each address it did not announce before, and stops
// everything for addresses no longer desired. With conflict detection, a
// new address is probed first (in the background: Set does not wait) and
// announced only if no foreign host answers; see DetectConflicts. Addresses it could not take
// are left out (and reported in the joined error), so the next Set retries
// them.
func (l *L2) Set(desired []Announcement) error {
	type wanted struct {
		reason   string
		fromPeer bool
	}
	want := map[string]map[netip.Addr]wanted{}
	var errs []error
	for _, a := range desired {
		addr := a.Addr.Unmap()
		if !addr.IsValid() || addr.Zone() != "" || addr.IsMulticast() || addr.IsUnspecified() || a.Interface == "" {
			errs = append(errs, fmt.Errorf("announce %s on %q: not an announceable address and interface", a.Addr, a.Interface))
			continue
		}
		if want[a.Interface] == nil {
			want[a.Interface] = map[netip.Addr]wanted{}
		}
		if _, dup := want[a.Interface][addr]; !dup {
			want[a.Interface][addr] = wanted{a.Reason, a.FromPeer}
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.started = true
	now := l.now()
	for k, t := range l.recent {
		if now.Sub(t) >= recentWindow {
			delete(l.recent, k)
		}
	}

	// Withdraw first, so that the snapshot published next no longer
	// answers for them.
	for name, lk := range l.links {
		for addr := range lk.addrs {
			if _, keep := want[name][addr]; !keep {
				errs = append(errs, lk.remove(addr))
			}
		}
	}
	l.publish()

	var added []*claim
	for name, addrs := range want {
		lk := l.links[name]
		if lk == nil {
			ifi, err := l.ifaceByName(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("announce %v on %s: %w", slices.SortedFunc(maps.Keys(addrs), netip.Addr.Compare), name, err))
				continue
			}
			lk = &link{l: l, ifi: ifi, addrs: map[netip.Addr]*claim{}}
			l.links[name] = lk
		}
		for addr, w := range addrs {
			if c := lk.addrs[addr]; c != nil {
				c.reason = w.reason
				continue
			}
			c, err := lk.add(addr, w.reason, l.firstState(claimKey{name, addr}, now, w.fromPeer))
			if err != nil {
				errs = append(errs, fmt.Errorf("announce %s on %s: %w", addr, name, err))
				continue
			}
			added = append(added, c)
		}
	}
	l.publish()
	for _, c := range added {
		if c.state == probing {
			l.log.Info("probing for conflicts", "ip", c.addr, "iface", c.link.ifi.Name, "reason", c.reason)
		} else {
			l.log.Info("announcing", "ip", c.addr, "iface", c.link.ifi.Name, "reason", c.reason)
		}
		c.start()
	}

	for name, lk := range l.links {
		if len(lk.addrs) == 0 {
			errs = append(errs, lk.close())
			delete(l.links, name)
		}
	}
	return errors.Join(errs...)
}

// Close stops answering for every address, closes every socket and waits
// for all goroutines. It is safe to call more than once.
func (l *L2) Close() error {
	l.mu.Lock()
	var errs []error
	if !l.closed {
		l.closed = true
		l.owners.Store(&owners{})
		l.watched.Store(&owners{})
		for name, lk := range l.links {
			for addr := range lk.addrs {
				errs = append(errs, lk.remove(addr))
			}
			errs = append(errs, lk.close())
			delete(l.links, name)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	return errors.Join(errs...)
}

// firstState is the state of a new claim: probing with conflict
// detection, unless another lbd node answered for the address until now
// (fromPeer), or this node announced the same address on the same
// interface less than recentWindow before now. Call with l.mu held.
func (l *L2) firstState(k claimKey, now time.Time, fromPeer bool) claimState {
	if !l.detect || fromPeer {
		return announced
	}
	if t, ok := l.recent[k]; ok && now.Sub(t) < recentWindow {
		return announced
	}
	return probing
}

// publish stores a new ownership snapshot built from the links. Call with
// l.mu held.
func (l *L2) publish() {
	o, w := owners{}, owners{}
	for name, lk := range l.links {
		for addr, c := range lk.addrs {
			if c.state == announced {
				o[addr] = append(o[addr], name)
			}
			if l.detect {
				w[addr] = append(w[addr], name)
			}
		}
	}
	l.owners.Store(&o)
	l.watched.Store(&w)
}

// goroutine starts f as one of the announcer's goroutines.
func (l *L2) goroutine(f func()) {
	l.wg.Go(func() {
		f()
	})
}
