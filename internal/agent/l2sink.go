package agent

import (
	"fmt"
	"net"
	"reflect"

	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
)

// L2Sink hands the L2 decisions to an L2 announcer (announce.L2): each
// announced address on each of its interfaces.
type L2Sink struct {
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

// NewL2Sink builds the first announcer with the configuration in force.
func NewL2Sink(cfg *config.Config, build func(*config.Config) (announce.Announcer, error)) (*L2Sink, error) {
	a, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return &L2Sink{New: build, l2: settingsOf(cfg), ann: a}, nil
}

// Announcements converts decisions into what an announcer takes.
func Announcements(ds []Decision) []announce.Announcement {
	var out []announce.Announcement
	for _, d := range ds {
		if !d.Announce {
			continue
		}
		for _, ifn := range d.Interfaces {
			out = append(out, announce.Announcement{Addr: d.Addr, Interface: ifn, Reason: fmt.Sprintf("%s of %s", d.Reason, d.Service)})
		}
	}
	return out
}

// Apply implements Sink.
func (s *L2Sink) Apply(ds []Decision) error {
	s.last = Announcements(ds)
	return s.ann.Set(s.last)
}

// SetPeers implements PeerSink: the announcer's conflict detection ignores
// the other lbd nodes.
func (s *L2Sink) SetPeers(macs []string) {
	s.peers = nil
	for _, m := range macs {
		if hw, err := net.ParseMAC(m); err == nil {
			s.peers = append(s.peers, hw)
		}
	}
	s.setPeers(s.ann)
}

func (s *L2Sink) setPeers(a announce.Announcer) {
	if p, ok := a.(interface{ SetPeers([]net.HardwareAddr) }); ok {
		p.SetPeers(s.peers)
	}
}

// Reload implements ConfigSink.
func (s *L2Sink) Reload(cfg *config.Config) error {
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
func (s *L2Sink) Close() error { return s.ann.Close() }
