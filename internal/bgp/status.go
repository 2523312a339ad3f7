package bgp

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
)

// PeerStatus is one session as lbd status shows it. It never holds the
// password.
type PeerStatus struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is GoBGP's session state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Since is when the session came up (established) or went down.
	Since time.Time `json:"since"`
	// Uptime is how long the session has been established.
	Uptime     time.Duration `json:"uptime,omitempty"`
	Advertised uint64        `json:"advertised_prefixes"`
	// UpdatesSent counts UPDATE messages sent over this peer's sessions
	// since the Speaker started.
	UpdatesSent uint64 `json:"updates_sent"`
	// Problem is why the session is not established, with a hint.
	Problem string `json:"problem,omitempty"`
	// PasswordFingerprint identifies the TCP MD5 password in use
	// (config.Fingerprint), never the password; "" without one.
	PasswordFingerprint string `json:"password_fingerprint,omitempty"`
}

// Status is the Speaker's state for lbd status.
type Status struct {
	ASN      uint32       `json:"asn"`
	RouterID netip.Addr   `json:"router_id"`
	Routes   int          `json:"routes"`
	Peers    []PeerStatus `json:"peers"`
}

// Status reports every configured peer, sorted by name.
func (s *Speaker) Status(ctx context.Context) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{ASN: s.global.asn, RouterID: s.global.routerID, Routes: len(s.paths)}
	live := s.poll(ctx)
	s.states.mu.Lock()
	defer s.states.mu.Unlock()
	for addr, e := range s.peers {
		p := PeerStatus{Name: e.s.name, Address: addr, ASN: e.s.asn, State: "idle", PasswordFingerprint: e.s.passwordFP}
		if ps, ok := s.states.m[addr]; ok {
			p.State, p.Since, p.Problem = ps.state, ps.since, ps.problem
			if ps.up {
				p.Uptime = time.Since(ps.since).Round(time.Second)
			}
		}
		p.Advertised = live[addr].advertised
		p.UpdatesSent = s.m.updatesTotal(e.s.name)
		st.Peers = append(st.Peers, p)
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Name < st.Peers[j].Name })
	return st
}

type liveCounts struct {
	advertised  uint64
	updatesSent uint64
}

// poll reads GoBGP's per-peer counters and folds the UPDATE counts into
// the per-name totals. Callers hold s.mu.
func (s *Speaker) poll(ctx context.Context) map[netip.Addr]liveCounts {
	out := map[netip.Addr]liveCounts{}
	if s.srv == nil || s.global == (globalKey{}) {
		return out
	}
	_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		addr = addr.Unmap()
		var c liveCounts
		for _, a := range p.AfiSafis {
			c.advertised += a.GetState().GetAdvertised()
		}
		c.updatesSent = p.GetState().GetMessages().GetSent().GetUpdate()
		out[addr] = c
	})
	for addr, e := range s.peers {
		s.m.foldUpdates(e.s.name, addr, out[addr].updatesSent)
	}
	return out
}

// metrics are the lbd_bgp_* series, collected from the Speaker at scrape
// time.
type metrics struct {
	s *Speaker

	mu sync.Mutex
	// updates: per peer name, the total of closed sessions' counts plus
	// the last count seen for the current GoBGP peer (by address).
	updBase map[string]uint64
	updLast map[string]updSeen

	up, changes, updates, advertised *prometheus.Desc
}

type updSeen struct {
	addr netip.Addr
	n    uint64
}

func newMetrics(s *Speaker) *metrics {
	return &metrics{
		s:          s,
		updBase:    map[string]uint64{},
		updLast:    map[string]updSeen{},
		up:         prometheus.NewDesc("lbd_bgp_session_up", "1 if the BGP session with the peer is established.", []string{"peer"}, nil),
		changes:    prometheus.NewDesc("lbd_bgp_session_state_changes_total", "BGP session state changes with the peer.", []string{"peer"}, nil),
		updates:    prometheus.NewDesc("lbd_bgp_updates_sent_total", "BGP UPDATE messages sent to the peer.", []string{"peer"}, nil),
		advertised: prometheus.NewDesc("lbd_bgp_advertised_prefixes", "Prefixes advertised to the peer.", []string{"peer"}, nil),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error { return reg.Register(m) }

// foldUpdates accounts n UPDATEs sent on the current session with addr:
// a count lower than the last one means GoBGP started counting again (the
// peer was re-added), so the last count moves into the base.
func (m *metrics) foldUpdates(name string, addr netip.Addr, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.updLast[name]
	if last.addr != addr || n < last.n {
		m.updBase[name] += last.n
	}
	m.updLast[name] = updSeen{addr: addr, n: n}
}

func (m *metrics) updatesTotal(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updBase[name] + m.updLast[name].n
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.up
	ch <- m.changes
	ch <- m.updates
	ch <- m.advertised
}

// scrapeTimeout bounds the GoBGP calls of one scrape.
const scrapeTimeout = 5 * time.Second

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.s
	// A scrape has no context; GoBGP answers from memory, but bound it.
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s.mu.Lock()
	live := s.poll(ctx)
	type row struct {
		name       string
		up         bool
		changes    uint64
		advertised uint64
	}
	var rows []row
	s.states.mu.Lock()
	for addr, e := range s.peers {
		r := row{name: e.s.name, advertised: live[addr].advertised}
		if ps, ok := s.states.m[addr]; ok {
			r.up, r.changes = ps.up, ps.changes
		}
		rows = append(rows, r)
	}
	s.states.mu.Unlock()
	s.mu.Unlock()
	for _, r := range rows {
		up := 0.0
		if r.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, r.name)
		ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(r.changes), r.name)
		ch <- prometheus.MustNewConstMetric(m.updates, prometheus.CounterValue, float64(m.updatesTotal(r.name)), r.name)
		ch <- prometheus.MustNewConstMetric(m.advertised, prometheus.GaugeValue, float64(r.advertised), r.name)
	}
}
