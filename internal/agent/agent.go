package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
	"github.com/lbdproject/lbd/internal/status"
)

// Cluster is where the agent reads the cluster from: internal/watch's
// Cluster, or a fake in tests. Its methods must be safe for concurrent use.
type Cluster interface {
	// Services returns the Services lbd serves, with the nodes of their
	// endpoints for externalTrafficPolicy: Local.
	Services() []cluster.Service
	// Nodes returns every Node.
	Nodes() []cluster.Node
	// NodeLeases returns every node's liveness Lease.
	NodeLeases() []cluster.Lease
	// Event records an Event on a Service; it must not block.
	Event(service string, warning bool, reason, msg string)
	// SetL2Owner records node, in its term of life that began at since,
	// as the owner of the Service's layer-2 addresses
	// (cluster.Service.L2Owner and L2OwnerSince), writing only when the
	// record differs.
	SetL2Owner(ctx context.Context, service, node string, since time.Time) error
}

// Sink carries out the decisions of one mode: the L2 announcer, the BGP
// speaker (internal/sink). Set gets every decision of its mode (announced
// or not), each time they change: the complete desired set, which the sink
// reconciles. It is called from the agent's goroutine only and must not
// block for long. An error is logged and Set is called again later with
// the then current decisions.
type Sink interface {
	Set(ctx context.Context, ds []Decision) error
}

// ConfigSink is a Sink that follows configuration reloads. Reload is
// called from the agent's goroutine with the reload's context; a sink that
// fails is given the previous configuration again, as are the sinks that
// took the new one.
type ConfigSink interface {
	Sink
	Reload(ctx context.Context, cfg *config.Config) error
}

// PeerSink is a Sink that wants the hardware addresses of the other lbd
// nodes (published in their liveness Leases), e.g. so that their answers
// during a hand-over are not taken for address conflicts.
type PeerSink interface {
	Sink
	SetPeers(macs []string)
}

// Options tune an Agent; the zero value is the daemon's.
type Options struct {
	// Links lists this node's interfaces; default SystemLinks.
	Links func() ([]Link, error)
	// Debounce is the least time between two plans: a burst of changes
	// makes one plan, an isolated change is planned at once. Default 20ms.
	Debounce time.Duration
	// LinkPoll is how often the links are listed. Default 200ms.
	LinkPoll time.Duration
	// Peers, if set, is the peer detector: liveness comes from it instead
	// of the Leases (see membership).
	Peers PeerSource
}

// Phase is what the agent is doing, as a value to decide on; State's
// Summary says it in words.
type Phase int

// Phases.
const (
	// PhaseWaiting: no plan yet (no cluster view, or this node's own
	// liveness not seen yet).
	PhaseWaiting Phase = iota
	// PhaseAnnouncing: the last plan was made with this node alive.
	PhaseAnnouncing
	// PhaseFrozen: this node's liveness is not seen renewed; the last
	// plan is kept.
	PhaseFrozen
	// PhaseLeaving: stopping, answering for the hand-over grace.
	PhaseLeaving
	// PhaseFenced: this node sees half or fewer of the lbd nodes through
	// its peers and answers for nothing at L2.
	PhaseFenced
)

func (p Phase) String() string {
	switch p {
	case PhaseAnnouncing:
		return "announcing"
	case PhaseFrozen:
		return "frozen"
	case PhaseLeaving:
		return "leaving"
	case PhaseFenced:
		return "fenced"
	}
	return "waiting"
}

// State is what the agent is doing, for `lbd status`.
type State struct {
	Phase     Phase
	Summary   string
	Decisions []Decision
}

// Agent is the node agent; see the package doc.
type Agent struct {
	node  string
	log   *slog.Logger
	opts  Options
	sinks map[Mode]Sink

	kick      chan struct{}
	leaseKick chan struct{}
	clusters  chan Cluster
	configs   chan configReq
	done      chan struct{}
	// planned is closed once the agent planned with this node alive.
	planned     chan struct{}
	plannedOnce sync.Once

	conflictMu sync.Mutex
	conflicts  map[netip.Addr]string // reported by the announcer: address → what was seen

	cfg       atomic.Pointer[config.Config] // the loop's, for Published
	state     atomic.Pointer[State]
	published atomic.Pointer[[]string]
	macs      atomic.Pointer[[]string]

	records *ownerRecords

	decisions *prometheus.GaugeVec
	announced *prometheus.GaugeVec
	addresses *prometheus.GaugeVec
	frozen    prometheus.Gauge

	peerStatus atomic.Pointer[PeerStatus]
	term       atomic.Pointer[time.Time]
	// silent: this node tells its peers it does not answer at L2 (see
	// Silent).
	silent     atomic.Bool
	peerKick   chan struct{}
	peerState  *prometheus.GaugeVec
	peersAlive prometheus.Gauge
	peersKnown prometheus.Gauge
}

type configReq struct {
	ctx  context.Context
	cfg  *config.Config
	done chan error
}

// New builds the agent for node with the configuration in force and
// registers its metrics with reg (nil: none). It starts nothing.
func New(node string, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Agent, error) {
	if opts.Links == nil {
		opts.Links = SystemLinks
	}
	if opts.Debounce == 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	if opts.LinkPoll == 0 {
		opts.LinkPoll = 200 * time.Millisecond
	}
	a := &Agent{
		node: node, log: log, opts: opts, sinks: map[Mode]Sink{},
		kick: make(chan struct{}, 1), leaseKick: make(chan struct{}, 1),
		clusters: make(chan Cluster, 1), configs: make(chan configReq),
		done: make(chan struct{}), planned: make(chan struct{}), conflicts: map[netip.Addr]string{},
		records: newOwnerRecords(node, log),
		decisions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_address_decisions",
			Help: "Service addresses by this node's decision reason (owner, other_owner, cordoned, ...).",
		}, []string{"reason"}),
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_announced_addresses",
			Help: "Service addresses this node announces, by mode.",
		}, []string{"mode"}),
		addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_service_addresses",
			Help: "Service addresses with an advertisement in this node's view, by mode: the same on every node; compare with the sum of lbd_announced_addresses.",
		}, []string{"mode"}),
		frozen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_agent_frozen",
			Help: "1 while this node does not see its own liveness Lease renewed and keeps its last plan (frozen), 0 otherwise.",
		}),
		peerKick: make(chan struct{}, 1),
		peerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_peers_state",
			Help: "With peers: 1 for this node's standing among its peers (quorum; minority: silent at L2; fallback: liveness from the Leases, the peers' port is likely blocked), 0 for the others.",
		}, []string{"state"}),
		peersAlive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_peers_alive",
			Help: "With peers: the lbd nodes this node sees alive through its peers, itself included.",
		}),
		peersKnown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_peers_known",
			Help: "With peers: the nodes known to run lbd (alive through the peers, or with a heartbeat Lease not expired); compare with lbd_peers_alive.",
		}),
	}
	for _, r := range Reasons {
		a.decisions.WithLabelValues(string(r))
	}
	for _, m := range []Mode{ModeL2, ModeBGP} {
		a.announced.WithLabelValues(string(m))
		a.addresses.WithLabelValues(string(m))
	}
	if reg != nil {
		cs := []prometheus.Collector{a.decisions, a.announced, a.addresses, a.frozen}
		if opts.Peers != nil {
			for _, st := range []string{cluster.PeerQuorum, cluster.PeerMinority, cluster.PeerFallback} {
				a.peerState.WithLabelValues(st)
			}
			cs = append(cs, a.peerState, a.peersAlive, a.peersKnown)
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("agent metrics: %w", err)
			}
		}
	}
	a.cfg.Store(cfg)
	a.newTerm(time.Now())
	a.state.Store(&State{Summary: "waiting for the cluster"})
	empty := []string{}
	a.published.Store(&empty)
	a.macs.Store(&empty)
	return a, nil
}

// AddSink makes s carry out the decisions of mode. Call before Run.
func (a *Agent) AddSink(mode Mode, s Sink) { a.sinks[mode] = s }

// SetCluster gives the agent its view of the cluster once the informers
// have synced.
func (a *Agent) SetCluster(c Cluster) {
	select {
	case a.clusters <- c:
	case <-a.done:
	}
}

// Notify says that Services, Nodes or endpoints changed. It never blocks.
func (a *Agent) Notify() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// NotifyLeases says that a liveness Lease changed. It never blocks.
func (a *Agent) NotifyLeases() {
	select {
	case a.leaseKick <- struct{}{}:
	default:
	}
}

// ReportConflict says that another host on the segment uses addr (on,
// with what was seen) or no longer does (off): the L2 announcer's conflict
// detection calls it. It never blocks. The address stays in the L2 sink's
// desired set (the announcer does not answer for it and probes again by
// itself); the status and metrics say `conflict`, and the Service gets a
// Warning Event.
func (a *Agent) ReportConflict(addr netip.Addr, on bool, detail string) {
	a.conflictMu.Lock()
	if on {
		a.conflicts[addr.Unmap()] = detail
	} else {
		delete(a.conflicts, addr.Unmap())
	}
	a.conflictMu.Unlock()
	a.Notify()
}

func (a *Agent) conflictsNow() map[netip.Addr]string {
	a.conflictMu.Lock()
	defer a.conflictMu.Unlock()
	out := make(map[netip.Addr]string, len(a.conflicts))
	maps.Copy(out, a.conflicts)
	return out
}

// Published returns what this node publishes about its interfaces in its
// liveness Lease (see PublishedInterfaces).
func (a *Agent) Published() []string { return *a.published.Load() }

// PublishedMACs returns the hardware addresses of this node's usable
// links, which it publishes in its liveness Lease for the other nodes.
func (a *Agent) PublishedMACs() []string { return *a.macs.Load() }

// State returns what the agent is doing and its latest decisions.
func (a *Agent) State() State { return *a.state.Load() }

// Planned is closed once the agent has planned with this node alive: it
// knows this node's share of the addresses. The BGP sink waits for it
// before opening sessions (a restarted speaker's End-of-RIB must not drop
// routes it has not announced again yet).
func (a *Agent) Planned() <-chan struct{} { return a.planned }

// Name implements daemon.Subsystem.
func (a *Agent) Name() string { return "agent" }

// Check implements daemon.Subsystem: any valid configuration can be
// applied; addresses simply move.
func (a *Agent) Check(context.Context, *config.Config, *config.Config) error { return nil }

// Apply implements daemon.Subsystem: the agent's loop takes next and plans
// again at once.
func (a *Agent) Apply(ctx context.Context, _, next *config.Config) error {
	req := configReq{ctx, next, make(chan error, 1)}
	select {
	case a.configs <- req:
	case <-a.done:
		return errors.New("the node agent has stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.done
}

// Previewer is a Sink that can say what a reload to cfg would do to it.
type Previewer interface {
	Preview(cfg *config.Config) ([]string, error)
}

// Preview implements daemon.Previewer: what a reload to next would do to
// this node's announcements. Planning with next is left to the reload;
// this says which announcers would be rebuilt or reset.
func (a *Agent) Preview(_ context.Context, prev, next *config.Config) ([]string, error) {
	var out []string
	if prev.L2.Gratuitous != next.L2.Gratuitous || prev.L2.ConflictDetectionEnabled() != next.L2.ConflictDetectionEnabled() || prev.L2.ConflictProbe != next.L2.ConflictProbe {
		out = append(out, "l2: the announcer is rebuilt with the new gratuitous or conflict settings (make-before-break: answering goes on)")
	}
	if !reflect.DeepEqual(prev.Pools, next.Pools) || !reflect.DeepEqual(prev.L2.Advertisements, next.L2.Advertisements) ||
		!reflect.DeepEqual(prev.BGP.Advertisements, next.BGP.Advertisements) || prev.L2.Failback != next.L2.Failback ||
		!reflect.DeepEqual(prev.L2.ExcludeInterfaces, next.L2.ExcludeInterfaces) {
		out = append(out, "addresses are planned again: some may move between nodes or modes (lbd status after the reload says where each is)")
	}
	var errs []error
	for _, s := range a.sinks {
		if p, ok := s.(Previewer); ok {
			lines, err := p.Preview(next)
			errs = append(errs, err)
			out = append(out, lines...)
		}
	}
	return out, errors.Join(errs...)
}

// loop is the state only Run's goroutine touches.
type loop struct {
	ctx       context.Context // Run's; nil in tests that call step's parts
	cfg       *config.Config
	cluster   Cluster
	links     linkState
	conflicts map[netip.Addr]string // as last reported to status, for Events
	peers     string
	// peerSeen is when each other node's MAC was last in a Lease. A node
	// that stops (its Lease deleted) keeps answering for its addresses
	// for its hand-over grace: its answers to the new owner's conflict
	// probe are a peer's, not a foreign host's.
	peerSeen map[string]time.Time
	// nodeMACs is each other node's MACs as last seen in its Lease (or
	// the peer detector's view), so that those of a node the detector
	// declared dead lately stay peers: such a node may be cut off, not
	// gone, and a packet of its is a split to resolve, not a foreign
	// host whose claim silences the new owner for Recheck.
	nodeMACs map[string][]string

	everAlive bool
	frozen    time.Time // when this node stopped seeing its own Lease alive
	// selfRenew is the latest renewal of its own Lease this node saw, and
	// liveSince the first renewal of the run of renewals it belongs to
	// (none more than a Lease apart): since then this node's view has
	// been live without a break.
	selfRenew, liveSince time.Time
	plan                 []Decision
	effective            []Decision
	applied              map[Mode][]Decision
	// reapply: a reload happened; the next step applies every mode,
	// including one whose decisions became empty (a pool moved from L2
	// to BGP must stop being answered for).
	reapply  bool
	handover map[string]time.Time // L2 decision key → end of its grace
	members  string               // what the last plan saw of the Leases
	retry    time.Time
	// minority is when this node last began to see half or fewer of the
	// lbd nodes through its peers (zero: it sees more), and fallback
	// whether it then fell back to the Leases.
	minority time.Time
	fallback bool
	// rejoined is when it last came back into a quorum, until it sees
	// its own Lease renewed since (zero: it did, or never left).
	rejoined time.Time
	// relisted is when it asked for the Services listed afresh, after it
	// was back in a quorum (see freshServices); zero: it has not.
	relisted time.Time
	// leasesUnwatched: the peers' heartbeat Leases are not watched (in a
	// quorum, they are not needed).
	leasesUnwatched bool
}

// Run is the agent's loop, until ctx ends. When it ends while this node
// answers for L2 addresses, it keeps answering for l2.handover_grace, so
// that the new owners (who saw this node's liveness Lease go) take over
// and send their gratuitous bursts first. The caller closes the sinks
// after Run returns.
func (a *Agent) Run(ctx context.Context) {
	defer close(a.done)
	var records sync.WaitGroup
	defer records.Wait()
	rctx, stopRecords := context.WithCancel(ctx)
	defer stopRecords() // before the wait: deferred calls run last first
	records.Go(func() { a.records.run(rctx) })
	l := &loop{ctx: ctx, cfg: a.cfg.Load(), conflicts: map[netip.Addr]string{}, applied: map[Mode][]Decision{}, handover: map[string]time.Time{}}
	a.pollLinks(l, time.Now())
	poll := time.NewTicker(a.opts.LinkPoll)
	defer poll.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	full, leases := false, false
	var due time.Time // when the next plan may run (debounce)
	var peersChanged <-chan struct{}
	if a.opts.Peers != nil {
		peersChanged = a.opts.Peers.Changed()
	}
	for {
		select {
		case <-peersChanged:
			leases = true
		case <-ctx.Done():
			a.leave(l)
			return
		case c := <-a.clusters:
			l.cluster, full = c, true
		case <-a.kick:
			full = true
		case <-a.leaseKick:
			leases = true
		case req := <-a.configs:
			req.done <- a.reload(req.ctx, l, req.cfg)
			full = true
		case now := <-poll.C:
			if a.pollLinks(l, now) {
				full = true
			}
		case <-wake.C:
			full = true // a Lease expires, a grace ends, a retry is due
		}
		now := time.Now()
		if !full && !leases {
			continue
		}
		if now.Before(due) {
			wake.Reset(due.Sub(now))
			continue
		}
		next := a.step(ctx, l, now, full)
		full, leases = false, false
		due = now.Add(a.opts.Debounce)
		wake.Reset(max(time.Until(next), time.Millisecond))
	}
}

func (a *Agent) pollLinks(l *loop, now time.Time) bool {
	links, err := a.opts.Links()
	if err != nil {
		a.log.Warn("cannot list interfaces", "err", err)
		return false
	}
	if !l.links.update(now, links) {
		return false
	}
	a.publish(l)
	return true
}

func (a *Agent) publish(l *loop) {
	p := PublishedInterfaces(l.cfg, l.links.names())
	a.published.Store(&p)
	m := l.links.macs()
	a.macs.Store(&m)
}

func (a *Agent) reload(ctx context.Context, l *loop, cfg *config.Config) error {
	var errs []error
	for mode, s := range a.sinks {
		if cs, ok := s.(ConfigSink); ok {
			if err := cs.Reload(ctx, cfg); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", mode, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		// Roll back the sinks that took it; a sink that cannot go back
		// is left as it is and said so.
		for mode, s := range a.sinks {
			if cs, ok := s.(ConfigSink); ok {
				if rerr := cs.Reload(ctx, l.cfg); rerr != nil {
					a.log.Error("cannot roll a sink back to the configuration in force", "mode", mode, "err", rerr)
				}
			}
		}
		return err
	}
	l.cfg = cfg
	l.reapply = true // every sink gets the decisions again, even an empty set
	a.cfg.Store(cfg)
	a.publish(l)
	return nil
}

// step gathers the view, plans if needed and applies. It returns when it
// wants to run again at the latest.
func (a *Agent) step(ctx context.Context, l *loop, now time.Time, full bool) time.Time {
	next := now.Add(time.Hour)
	if l.cluster == nil {
		return next
	}
	v := View{Nodes: map[string]cluster.Node{}, Alive: map[string]Member{}, Interfaces: l.links.names(), Subnets: l.links.subnets()}
	for _, n := range l.cluster.Nodes() {
		v.Nodes[n.Name] = n
	}
	var selfRenew time.Time
	var members, peers []string
	leases := l.cluster.NodeLeases()
	fenced := ""
	if a.opts.Peers != nil {
		var wake time.Time
		leases, fenced, wake = a.membership(l, leases, now)
		next = minTime(next, wake)
		a.setSilent(l, fenced != "" && !l.rejoined.IsZero() && !now.Before(l.rejoined.Add(l.fallbackLease())))
	}
	for _, ls := range leases {
		if ls.Node == a.node {
			selfRenew = ls.RenewTime
			if ls.RenewTime.After(l.selfRenew) {
				if l.selfRenew.IsZero() || ls.RenewTime.Sub(l.selfRenew) > ls.Duration {
					l.liveSince = ls.RenewTime // a break in the view: a new run
				}
				l.selfRenew = ls.RenewTime
			}
		}
	}
	if l.peerSeen == nil {
		l.peerSeen = map[string]time.Time{}
	}
	if l.nodeMACs == nil {
		l.nodeMACs = map[string][]string{}
	}
	if a.opts.Peers != nil {
		for _, name := range a.opts.Peers.Gone() {
			for _, mac := range l.nodeMACs[name] {
				l.peerSeen[mac] = now
			}
		}
	}
	for _, ls := range leases {
		if ls.Node != a.node {
			for _, mac := range ls.MACs {
				l.peerSeen[mac] = now
			}
			if len(ls.MACs) > 0 {
				l.nodeMACs[ls.Node] = ls.MACs
			}
		}
		if !now.Before(ls.Expires()) {
			if ls.Node == a.node || l.evidence(ls, now) {
				continue // dead
			}
			if t := l.liveSince.Add(ls.Duration); !l.liveSince.IsZero() && t.After(now) && t.Before(next) {
				next = t.Add(time.Millisecond) // when the evidence may be complete
			}
		}
		v.Alive[ls.Node] = Member{Since: ls.Since, Interfaces: ls.Interfaces}
		ifs := fmt.Sprint(ls.Interfaces) // [] is none (silent: no candidate); nil unknown
		if ls.Interfaces == nil {
			ifs = "?"
		}
		members = append(members, fmt.Sprintf("%s@%d%s", ls.Node, ls.Since.UnixNano(), ifs))
		if e := ls.Expires(); e.Before(next) {
			next = e.Add(time.Millisecond)
		}
	}
	// A peer stays one for its hand-over grace and a margin after its
	// Lease went away.
	keep := l.cfg.L2.HandoverGrace + peerMargin
	for mac, seen := range l.peerSeen {
		if now.Sub(seen) > keep {
			delete(l.peerSeen, mac)
			continue
		}
		peers = append(peers, mac)
		if t := seen.Add(keep).Add(time.Millisecond); t.Before(next) {
			next = t
		}
	}
	a.setPeers(l, peers)
	suppressed := l.links.suppressed(selfRenew)
	slices.Sort(members)
	sig := strings.Join(members, " ") + fmt.Sprint(suppressed) + fenced
	due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
	handoverDue := false
	for _, end := range l.handover {
		handoverDue = handoverDue || due(end)
	}
	if !full && sig == l.members && !handoverDue && !due(l.retry) {
		return minTime(next, l.wakeups())
	}
	l.members = sig

	_, selfAlive := v.Alive[a.node]
	phase, summary := PhaseAnnouncing, "announcing this node's share"
	switch {
	case selfAlive:
		v.Services = l.cluster.Services()
		prev := l.plan
		l.plan = Plan(l.cfg, a.node, v)
		a.logOwnerChanges(prev, l.plan, v)
		l.everAlive = true
		if !l.frozen.IsZero() {
			a.log.Info("this node's liveness Lease is seen again; planning again", event.Attr(event.Unfrozen), "node", a.node)
		}
		l.frozen = time.Time{}
	case l.everAlive:
		// This node cannot renew its Lease, or its informers are stale:
		// then every other node looks dead too, and planning would grab
		// everything. Keep announcing what it announced.
		if l.frozen.IsZero() {
			l.frozen = now
			a.log.Warn("this node's liveness Lease is not seen renewed: keeping the last plan until it is", event.Attr(event.Frozen), "node", a.node)
		}
		phase = PhaseFrozen
		summary = "frozen since " + l.frozen.Format(time.RFC3339) + ": this node's liveness Lease is not seen renewed (API server unreachable?); keeping the last plan"
	default:
		v.Services = l.cluster.Services()
		l.plan = Plan(l.cfg, a.node, v)
		phase, summary = PhaseWaiting, "waiting for this node's liveness Lease"
		if a.opts.Peers != nil {
			summary = "waiting for the peer detector"
		}
	}
	if fenced != "" && phase == PhaseAnnouncing {
		phase, summary = PhaseFenced, "fenced: "+fenced
	}

	l.effective = a.handOver(l, now)
	if phase == PhaseFenced {
		// Silent at once, without a hand-over grace: this node may be
		// the one cut off, and the others have its addresses.
		l.effective = fence(l.effective)
		clear(l.handover)
	}
	l.effective = suppress(l.effective, suppressed)
	if len(suppressed) > 0 {
		summary += fmt.Sprintf("; not answering on %s until its link is up and the view is fresh", strings.Join(suppressed, ", "))
	}

	l.retry = time.Time{}
	for mode, s := range a.sinks {
		var ds []Decision
		for _, d := range l.effective {
			if d.Mode == mode {
				ds = append(ds, d)
			}
		}
		if !l.reapply && reflect.DeepEqual(ds, l.applied[mode]) {
			continue
		}
		if err := s.Set(ctx, ds); err != nil {
			a.log.Warn("could not apply all decisions; retrying", "mode", mode, "err", err)
			l.retry = now.Add(2 * time.Second)
		}
		a.logChanges(l.applied[mode], ds)
		l.applied[mode] = ds
	}
	l.reapply = false
	if phase == PhaseAnnouncing {
		since := v.Alive[a.node].Since
		a.records.set(l.cluster, a.toRecord(l, v.Services, since), since)
	}
	a.report(l, phase, summary, a.conflictsNow())
	if phase == PhaseAnnouncing {
		a.plannedOnce.Do(func() { close(a.planned) })
	}
	return minTime(next, l.wakeups())
}

// logOwnerChanges logs, at debug level, each L2 address whose owner the
// new plan changes, with what the choice rested on: the owner the Service
// records (and the term it was recorded in) and each live node's term.
func (a *Agent) logOwnerChanges(prev, next []Decision, v View) {
	if !a.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	was := map[string]string{}
	for _, d := range prev {
		if d.Mode == ModeL2 {
			was[d.Service+" "+d.Addr.String()] = d.Owner
		}
	}
	svcs := map[string]cluster.Service{}
	for _, s := range v.Services {
		svcs[s.Key()] = s
	}
	for _, d := range next {
		k := d.Service + " " + d.Addr.String()
		if d.Mode != ModeL2 || was[k] == d.Owner {
			continue
		}
		s := svcs[d.Service]
		terms := make([]string, 0, len(v.Alive))
		for _, n := range slices.Sorted(maps.Keys(v.Alive)) {
			terms = append(terms, n+"@"+v.Alive[n].Since.UTC().Format(time.RFC3339Nano))
		}
		a.log.Debug("owner chosen", "service", d.Service, "ip", d.Addr, "owner", d.Owner, "was", was[k],
			"recorded", s.L2Owner, "recorded_since", s.L2OwnerSince.UTC().Format(time.RFC3339Nano), "created", s.Created.UTC().Format(time.RFC3339), "alive", strings.Join(terms, " "))
	}
}

// toRecord lists the Services whose layer-2 addresses this node owns and
// that do not name it, in its term of life that began at since, as their
// owner yet.
func (a *Agent) toRecord(l *loop, svcs []cluster.Service, since time.Time) []string {
	current := make(map[string]bool, len(svcs))
	for _, s := range svcs {
		current[s.Key()] = s.L2Owner == a.node && s.L2OwnerSince.Equal(since)
	}
	var out []string
	for _, d := range l.effective {
		if d.Mode == ModeL2 && d.Reason == ReasonOwner && !current[d.Service] {
			out = append(out, d.Service)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// evidence reports whether another node's expired Lease proves its death.
// It does only when this node's own view was live, without a break, for a
// whole Lease duration in which the other could have renewed: this node
// saw its own Lease renewed after the other's expiry, and has seen its
// renewals without a gap for at least one Lease duration. Without the
// first, when the API becomes unreachable every Lease expires in turn and
// whoever outlives an owner by a few milliseconds would take its
// addresses just before freezing with them; without the second, when the
// API comes back, the first node to renew would take the addresses of
// the others before they could renew too.
func (l *loop) evidence(ls cluster.Lease, now time.Time) bool {
	return l.selfRenew.After(ls.Expires()) && !l.liveSince.IsZero() && !now.Before(l.liveSince.Add(ls.Duration))
}

// peerMargin is how long past its hand-over grace a node that left is
// still a peer: the grace runs on its clock, from its own stop.
const peerMargin = 3 * time.Second

// setPeers gives the sinks that want them the other nodes' MACs, when
// they change.
func (a *Agent) setPeers(l *loop, macs []string) {
	slices.Sort(macs)
	macs = slices.Compact(macs)
	if sig := strings.Join(macs, ","); sig != l.peers {
		l.peers = sig
		for _, s := range a.sinks {
			if ps, ok := s.(PeerSink); ok {
				ps.SetPeers(macs)
			}
		}
	}
}

// wakeups is the earliest grace end or retry.
func (l *loop) wakeups() time.Time {
	t := l.retry
	for _, end := range l.handover {
		if t.IsZero() || end.Before(t) {
			t = end
		}
	}
	if t.IsZero() {
		return time.Now().Add(time.Hour)
	}
	return t
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func key(d Decision) string { return d.Service + " " + d.Addr.String() + " " + string(d.Mode) }

// handOver keeps answering, for l2.handover_grace, for an L2 address this
// node announced and no longer owns while the address still exists: the
// new owner, which decided at the same time from the same view, takes it
// and sends its burst meanwhile (make-before-break).
func (a *Agent) handOver(l *loop, now time.Time) []Decision {
	before := map[string]Decision{}
	for _, d := range l.effective {
		if d.Mode == ModeL2 && d.Announce {
			before[key(d)] = d
		}
	}
	out := slices.Clone(l.plan)
	seen := map[string]bool{}
	for i, d := range out {
		k := key(d)
		seen[k] = true
		prev, was := before[k]
		if d.Mode != ModeL2 || d.Announce || !was {
			delete(l.handover, k)
			continue
		}
		end, ok := l.handover[k]
		if !ok {
			end = now.Add(l.cfg.L2.HandoverGrace)
			l.handover[k] = end
		}
		if !now.Before(end) {
			delete(l.handover, k)
			continue
		}
		out[i].Announce, out[i].Reason, out[i].Interfaces = true, ReasonHandover, prev.Interfaces
	}
	for k := range l.handover {
		if !seen[k] {
			delete(l.handover, k)
		}
	}
	return out
}

// suppress takes the links in off out of the L2 decisions.
func suppress(ds []Decision, off []string) []Decision {
	if len(off) == 0 {
		return ds
	}
	for i, d := range ds {
		if d.Mode != ModeL2 || !d.Announce {
			continue
		}
		ifs := slices.DeleteFunc(slices.Clone(d.Interfaces), func(n string) bool { return slices.Contains(off, n) })
		if len(ifs) == 0 {
			ds[i].Announce, ds[i].Reason, ds[i].Interfaces = false, ReasonLinkDown, nil
		} else {
			ds[i].Interfaces = ifs
		}
	}
	return ds
}

func (a *Agent) logChanges(before, after []Decision) {
	was := map[string]Decision{}
	for _, d := range before {
		was[key(d)] = d
	}
	for _, d := range after {
		p, ok := was[key(d)]
		delete(was, key(d))
		switch {
		case d.Announce && (!ok || !p.Announce):
			a.log.Info("taking over", event.Attr(event.Takeover), "service", d.Service, "ip", d.Addr, "mode", d.Mode, "reason", d.Reason, "iface", strings.Join(d.Interfaces, ","))
		case !d.Announce && ok && p.Announce:
			a.log.Info("releasing", event.Attr(event.Release), "service", d.Service, "ip", d.Addr, "mode", d.Mode, "reason", d.Reason, "node", d.Owner)
		}
	}
	for _, p := range was {
		if p.Announce {
			a.log.Info("releasing", event.Attr(event.Release), "service", p.Service, "ip", p.Addr, "mode", p.Mode, "reason", "address gone")
		}
	}
}

// report publishes the decisions for status and metrics, with the
// addresses in conflict shown as such, and records a Warning Event on a
// Service when one of its addresses gets into conflict.
func (a *Agent) report(l *loop, phase Phase, summary string, conflicts map[netip.Addr]string) {
	shown := slices.Clone(l.effective)
	for i, d := range shown {
		detail, ok := conflicts[d.Addr]
		if d.Mode != ModeL2 || !d.Announce || !ok {
			continue
		}
		shown[i].Announce, shown[i].Reason = false, ReasonConflict
		if _, known := l.conflicts[d.Addr]; !known && l.cluster != nil {
			l.cluster.Event(d.Service, true, "AddressConflict", fmt.Sprintf("%s is not announced: another host on the segment uses it (%s)", d.Addr, detail))
		}
	}
	l.conflicts = conflicts
	count := map[Reason]float64{}
	ann, total := map[Mode]float64{}, map[Mode]float64{}
	for _, d := range shown {
		count[d.Reason]++
		total[d.Mode]++
		if _, carried := a.sinks[d.Mode]; d.Announce && carried {
			ann[d.Mode]++ // only what a sink really announces
		}
	}
	for _, r := range Reasons {
		a.decisions.WithLabelValues(string(r)).Set(count[r])
	}
	for _, m := range []Mode{ModeL2, ModeBGP} {
		a.announced.WithLabelValues(string(m)).Set(ann[m])
		a.addresses.WithLabelValues(string(m)).Set(total[m])
	}
	if phase == PhaseFrozen {
		a.frozen.Set(1)
	} else {
		a.frozen.Set(0)
	}
	a.state.Store(&State{Phase: phase, Summary: summary, Decisions: shown})
}

// leave keeps answering for the hand-over grace if this node answers for
// anything at L2; its liveness Lease is being deleted meanwhile.
func (a *Agent) leave(l *loop) {
	grace := l.cfg.L2.HandoverGrace
	if grace <= 0 || !slices.ContainsFunc(l.applied[ModeL2], func(d Decision) bool { return d.Announce }) {
		return
	}
	st := a.State()
	st.Phase, st.Summary = PhaseLeaving, fmt.Sprintf("leaving: answering for %s more while the new owners take over", grace)
	a.state.Store(&st)
	a.log.Info("leaving: still answering while the new owners take over", event.Attr(event.Leaving), "grace", grace)
	time.Sleep(grace)
}

// Ready says why the agent does not announce this node's share, or nil:
// it is waiting for the cluster or its own liveness, frozen, or leaving.
func (a *Agent) Ready() error {
	if st := a.State(); st.Phase != PhaseAnnouncing {
		return fmt.Errorf("agent: %s", st.Summary)
	}
	return nil
}

// Report implements status.Reporter: what the agent does and its decision
// for every Service address.
func (a *Agent) Report(_ context.Context, st *status.Status) {
	s := a.State()
	st.Agent = s.Summary
	if a.opts.Peers != nil {
		p := a.PeerStatus()
		st.Peers = &status.Peers{State: p.State, Alive: p.View, Known: p.Known, Why: p.Why}
	}
	for _, d := range s.Decisions {
		st.Addresses = append(st.Addresses, status.Address{
			Service: d.Service, IP: d.Addr.String(), Mode: string(d.Mode), Owner: d.Owner,
			Announcing: d.Announce, Reason: string(d.Reason), Interfaces: d.Interfaces,
		})
	}
}
