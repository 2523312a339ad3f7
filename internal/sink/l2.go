package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

// L2 hands the agent's L2 decisions to an L2 announcer (announce.L2): each
// announced address on each of its interfaces.
type L2 struct {
	// New builds an announcer for the l2 settings of cfg; a reload that
	// changes them (gratuitous, conflict detection) builds a new one,
	// gives it the current set, then closes the old one
	// (make-before-break).
	New func(cfg *config.Config) (announce.Announcer, error)

	l2    l2Settings
	ann   announce.Announcer
	last  []announce.Announcement
	peers []net.HardwareAddr
}

// l2Settings are the keys that the announcer is built with.
type l2Settings struct {
	grat   config.Gratuitous
	detect bool
	probe  config.ConflictProbe
}

func settingsOf(cfg *config.Config) l2Settings {
	return l2Settings{cfg.L2.Gratuitous, cfg.L2.ConflictDetectionEnabled(), cfg.L2.ConflictProbe}
}

// ConflictReporter is told when another host on the segment starts (on)
// or stops using an address this node answers for: the agent's
// ReportConflict.
type ConflictReporter func(addr netip.Addr, on bool, detail string)

// NewL2 builds the L2 sink around this machine's announcer (announce.L2)
// with the configuration in force, its metrics registered with reg and,
// when conflict detection is on, conflicts reported to report.
func NewL2(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, report ConflictReporter) (*L2, error) {
	log = log.With("component", "l2")
	return NewL2With(cfg, func(cfg *config.Config) (announce.Announcer, error) {
		a, err := announce.NewL2(log, announce.SystemClock{}, cfg.L2.Gratuitous, replacing{reg})
		if err != nil || !cfg.L2.ConflictDetectionEnabled() {
			return a, err
		}
		tell := func(on bool) func(announce.Conflict) {
			return func(c announce.Conflict) {
				report(c.Addr, on, fmt.Sprintf("%s on %s from %s", c.Reason, c.Interface, c.MAC))
			}
		}
		return a, a.DetectConflicts(announce.ConflictOptions{Probe: cfg.L2.ConflictProbe, OnConflict: tell(true), OnClear: tell(false)})
	})
}

// NewL2With builds the L2 sink with announcers made by build (tests pass
// fakes).
func NewL2With(cfg *config.Config, build func(*config.Config) (announce.Announcer, error)) (*L2, error) {
	a, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return &L2{New: build, l2: settingsOf(cfg), ann: a}, nil
}

// replacing registers a collector in place of an equal one registered
// before: a reload that rebuilds the L2 announcer keeps its metrics
// exported (the counts restart, which rate() tolerates).
type replacing struct{ prometheus.Registerer }

func (r replacing) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	if dup, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		r.Unregister(dup.ExistingCollector)
		return r.Registerer.Register(c)
	}
	return err
}

// Announcements converts decisions into what an announcer takes.
func Announcements(ds []agent.Decision) []announce.Announcement {
	var out []announce.Announcement
	for _, d := range ds {
		if !d.Announce {
			continue
		}
		for _, ifn := range d.Interfaces {
			out = append(out, announce.Announcement{Addr: d.Addr, Interface: ifn,
				Reason: fmt.Sprintf("%s of %s", d.Reason, d.Service), FromPeer: d.FromPeer})
		}
	}
	return out
}

// Set implements agent.Sink.
func (s *L2) Set(_ context.Context, ds []agent.Decision) error {
	s.last = Announcements(ds)
	return s.ann.Set(s.last)
}

// SetPeers implements agent.PeerSink: the announcer's conflict detection ignores
// the other lbd nodes.
func (s *L2) SetPeers(macs []string) {
	s.peers = nil
	for _, m := range macs {
		if hw, err := net.ParseMAC(m); err == nil {
			s.peers = append(s.peers, hw)
		}
	}
	s.setPeers(s.ann)
}

func (s *L2) setPeers(a announce.Announcer) {
	if p, ok := a.(interface{ SetPeers([]net.HardwareAddr) }); ok {
		p.SetPeers(s.peers)
	}
}

// Reload implements agent.ConfigSink.
func (s *L2) Reload(_ context.Context, cfg *config.Config) error {
	if reflect.DeepEqual(settingsOf(cfg), s.l2) {
		return nil
	}
	next, err := s.New(cfg)
	if err != nil {
		return fmt.Errorf("L2 announcer with the new l2 settings: %w", err)
	}
	s.setPeers(next)
	// Addresses the new one cannot take yet are retried by the next
	// Apply, which the agent makes after every reload.
	_ = next.Set(s.last)
	old := s.ann
	s.ann, s.l2 = next, settingsOf(cfg)
	return old.Close()
}

// Close withdraws everything and closes the announcer.
func (s *L2) Close() error { return s.ann.Close() }
