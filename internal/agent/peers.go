package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
)

// Peer is a live lbd node as the peer detector sees it, with what it
// publishes through the detector instead of its Lease.
type Peer struct {
	Since      time.Time
	Interfaces []string
	MACs       []string
}

// PeerSource is the peer detector (internal/peers), when the
// configuration has a peers section: liveness then comes from it, and the
// Leases are a heartbeat that says which nodes run lbd and what each of
// them sees.
type PeerSource interface {
	// Peers returns the live lbd nodes by name, this one included; nil
	// while the detector is not running yet.
	Peers() map[string]Peer
	// Changed is signalled when Peers may have changed.
	Changed() <-chan struct{}
	// Unheard is how long since a peer last answered one of this node's
	// probes.
	Unheard() time.Duration
	// Gone lists the nodes that died (did not leave) lately: they still
	// count among the nodes that run lbd.
	Gone() []string
	// WatchLeases turns the watch on the heartbeat Leases on or off: a
	// node in a quorum needs none of them.
	WatchLeases(on bool)
}

// PeerStatus is this node's standing among its peers, which its Lease
// publishes (cluster.Lease.PeerState and Peers).
type PeerStatus struct {
	// State is cluster.PeerQuorum, PeerMinority or PeerFallback; "" while
	// the detector is not running.
	State string
	// View is the live lbd nodes this node sees, itself included, sorted.
	View []string
	// Known is how many nodes run lbd: those its peers see, and those
	// with a heartbeat Lease not expired.
	Known int
	// Why says what the state rests on, for lbd status.
	Why string
}

// fallbackLease is how long, in fallback, a Lease counts after its last
// renewal: kubernetes.liveness.duration, the pace every node not in a
// quorum renews at.
func (l *loop) fallbackLease() time.Duration { return l.cfg.Kubernetes.Liveness.Duration }

// membership turns the peer view and the heartbeat Leases into the Leases
// step plans with, and says whether this node must stay silent at L2.
//
//   - More than half of the known lbd nodes alive in the peer view
//     (quorum): the live peers are the live nodes. The Leases only say
//     which nodes run lbd.
//   - Half or fewer (minority): silent at once; this node may be the one
//     cut off, and the others, which have its addresses, drop it as fast
//     as it drops them. After peers.fallback_after, if the Leases show
//     a majority of nodes whose views hold a majority and leave this
//     node out, it stays silent. Otherwise (the peer port is blocked
//     everywhere, or most nodes died at once) it falls back: a node is
//     alive if it is in the peer view or renewed its Lease within
//     kubernetes.liveness.duration (every node out of a quorum renews at
//     that pace), provided this node sees its own Lease renewed within
//     that time too (its view of the API is fresh).
//
// It returns the Leases to plan with (nil: wait), a reason to stay silent
// at L2 (""), and when to look again at the latest.
func (a *Agent) membership(l *loop, leases []cluster.Lease, now time.Time) ([]cluster.Lease, string, time.Time) {
	wake := now.Add(time.Hour)
	peers := a.opts.Peers.Peers()
	if peers == nil {
		a.setPeerStatus(PeerStatus{Why: "the peer detector is not running yet"})
		return nil, "", wake
	}
	known := map[string]bool{}
	for name := range peers {
		known[name] = true
	}
	for _, name := range a.opts.Peers.Gone() {
		known[name] = true
	}
	for _, ls := range leases {
		if ls.PeerState != "" && ls.Alive(now) {
			known[ls.Node] = true
			if e := ls.Expires(); e.Before(wake) {
				wake = e.Add(time.Millisecond)
			}
		}
	}
	known[a.node] = true
	view := slices.Sorted(maps.Keys(peers))
	st := PeerStatus{View: view, Known: len(known)}
	out := peerLeases(peers, now)
	for i := range out {
		if out[i].Node == a.node {
			out[i].Since = a.Term() // the others learn it through the detector
		}
	}
	// A node cut from the others declares each of them dead in turn
	// (one probe per interval: half of 500 nodes would take 37 s), while
	// they need to declare only it. It knows sooner that it hears from
	// nobody: a connected node gets an ack every probe interval. After
	// QuietAfter of silence it counts itself out of the quorum rather
	// than answer beside the node that took its addresses.
	doubt := len(peers) > 1 && a.opts.Peers.Unheard() > QuietAfter(l.cfg)
	if 2*len(peers) > len(known) && !doubt {
		if !l.minority.IsZero() {
			a.newTerm(now)
			l.rejoined = now
			a.log.Info("sees a majority of the lbd nodes through its peers again", event.Attr(event.PeerQuorum), "alive", len(peers), "known", len(known))
		}
		l.minority, l.fallback = time.Time{}, false
		st.State, st.Why = cluster.PeerQuorum, fmt.Sprintf("%d of %d lbd nodes alive through the peers", len(peers), len(known))
		a.setPeerStatus(st) // renews the Lease at once
		if !l.rejoined.IsZero() {
			// Its view of the API may be as old as the cut that put it
			// out (a pulled cable cuts both): an owner record from
			// then would hand it addresses the others hold now. It
			// plans once it sees its own Lease renewed since.
			if !renewedSince(leases, a.node, l.rejoined) {
				a.watchLeases(l, true)
				// After the liveness Lease's duration its API is out
				// of reach (a reachable one shows the renewal asked
				// for at the rejoin within a second): step then
				// tells the peers this node is silent (Silent), and
				// they count it out as an owner.
				why := "back in a quorum of its peers; waiting to see its own Lease renewed (a fresh view of the API) before answering"
				if t := l.rejoined.Add(l.fallbackLease()); now.Before(t) {
					wake = minTime(wake, t)
				} else {
					why += "; not renewed for " + l.fallbackLease().String() + " (the API out of reach?): its peers are told it is silent, and another node answers its addresses"
				}
				return out, why, wake
			}
			if !a.freshServices(l) {
				// Woken by the listed Services; and, with none, soon.
				return out, "back in a quorum of its peers, its own Lease renewed: waiting for the Services listed afresh (another node may hold its addresses now) before answering", minTime(wake, now.Add(time.Second))
			}
			l.rejoined, l.relisted = time.Time{}, time.Time{}
		}
		a.watchLeases(l, false)
		return out, "", wake
	}
	missing := []string{}
	for n := range known {
		if _, ok := peers[n]; !ok {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	a.watchLeases(l, true) // what the others see, and the fallback, are in the Leases
	if l.minority.IsZero() {
		l.minority = now
		a.log.Warn("sees half or fewer of the lbd nodes through its peers: not answering at L2", event.Attr(event.Fenced),
			"alive", len(peers), "known", len(known), "unreachable", strings.Join(missing, ","))
	}
	st.State = cluster.PeerMinority
	silent := fmt.Sprintf("sees %d of %d lbd nodes through its peers (not %s): not answering at L2", len(peers), len(known), strings.Join(missing, ", "))
	decide := l.minority.Add(l.cfg.Peers.FallbackAfter)
	if now.Before(decide) {
		st.Why = silent
		a.setPeerStatus(st)
		return out, silent, decide
	}
	// A node excludes this one when its published view leaves it out
	// and holds a majority of the known nodes, whatever state it
	// publishes: a node of that majority that doubts for a moment (no
	// ack for QuietAfter, on a loaded machine) says minority with the
	// same view. Counting only "quorum" Leases, a cut-off node that
	// looked just then fell back and took its addresses for 40 ms, and
	// the new owner took that for a foreign claim (TestL2Peers, CI).
	var without []string
	for _, ls := range leases {
		if ls.Node != a.node && ls.Alive(now) && ls.PeerState != "" && 2*len(ls.Peers) > len(known) &&
			slices.Contains(ls.Peers, ls.Node) && !slices.Contains(ls.Peers, a.node) {
			without = append(without, ls.Node)
		}
	}
	slices.Sort(without)
	if 2*len(without) > len(known) {
		st.Why = silent + "; " + strings.Join(without, ", ") + " see each other without this node (is the peers' port open to and from it?)"
		l.fallback = false
		a.setPeerStatus(st)
		return out, st.Why, wake
	}
	if !renewedSince(leases, a.node, now.Add(-l.fallbackLease())) {
		st.Why = silent + "; and it does not see its own Lease renewed (is the API server unreachable too?)"
		l.fallback = false
		a.setPeerStatus(st)
		return out, st.Why, wake
	}
	if !l.fallback {
		a.newTerm(now)
		a.log.Warn("no majority of lbd nodes sees each other without this node: liveness from the Leases", event.Attr(event.PeerFallback),
			"alive", len(peers), "known", len(known), "unreachable", strings.Join(missing, ","))
		l.fallback = true
	}
	for _, ls := range leases {
		if _, ok := peers[ls.Node]; ok || ls.Node == a.node {
			continue
		}
		ls.Duration = min(ls.Duration, l.fallbackLease())
		if ls.Alive(now) {
			out = append(out, ls)
			if e := ls.Expires(); e.Before(wake) {
				wake = e.Add(time.Millisecond)
			}
		}
	}
	st.State = cluster.PeerFallback
	st.Why = fmt.Sprintf("sees %d of %d lbd nodes through its peers, and no majority sees each other without it: liveness from the Leases (is the peers' port blocked?)", len(peers), len(known))
	a.setPeerStatus(st)
	return out, "", wake
}

// QuietAfter is how long a node that hears no ack from any peer waits
// before it counts itself out of the quorum: six probe intervals (900 ms
// by default), a little after the others declare it dead (0.5-0.8 s).
// A connected node can go three intervals without an ack: with one of
// two peers dead and not yet declared so, the probes to the dead one fail
// and memberlist reshuffles the probe order every round (C, A | A, C).
// With four (600 ms) a loaded CI machine made live nodes doubt, fall
// silent and begin a new term: the address moved for nothing.
func QuietAfter(cfg *config.Config) time.Duration { return 6 * cfg.Peers.ProbeInterval }

// watchLeases turns the Lease watch on or off when that changes.
func (a *Agent) watchLeases(l *loop, on bool) {
	if l.leasesUnwatched == !on {
		return
	}
	l.leasesUnwatched = !on
	a.opts.Peers.WatchLeases(on)
}

// renewedSince reports whether node's Lease was renewed at or after t.
func renewedSince(leases []cluster.Lease, node string, t time.Time) bool {
	for _, ls := range leases {
		if ls.Node == node && !ls.RenewTime.Before(t) {
			return true
		}
	}
	return false
}

// peerLeases makes the Leases step plans with from the live peers: alive
// now and for an hour (a dead peer leaves the set instead of expiring).
func peerLeases(peers map[string]Peer, now time.Time) []cluster.Lease {
	out := make([]cluster.Lease, 0, len(peers))
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		p := peers[name]
		out = append(out, cluster.Lease{Node: name, RenewTime: now, Duration: time.Hour, Since: p.Since, Interfaces: p.Interfaces, MACs: p.MACs})
	}
	return out
}

// setPeerStatus publishes st and, when what the Lease carries changes,
// asks for a renewal at once.
func (a *Agent) setPeerStatus(st PeerStatus) {
	prev := a.peerStatus.Load()
	a.peerStatus.Store(&st)
	if prev == nil || prev.State != st.State || !slices.Equal(prev.View, st.View) {
		select {
		case a.peerKick <- struct{}{}:
		default:
		}
	}
	for _, s := range []string{cluster.PeerQuorum, cluster.PeerMinority, cluster.PeerFallback} {
		v := 0.0
		if s == st.State {
			v = 1
		}
		a.peerState.WithLabelValues(s).Set(v)
	}
	a.peersAlive.Set(float64(len(st.View)))
	a.peersKnown.Set(float64(st.Known))
}

// newTerm begins a term of life for this node at now: at the start, and
// each time it joins a quorum again (or falls back) after it was out of
// one. The others took its addresses meanwhile, and an owner record of
// an earlier term (cluster.Service.L2OwnerSince) must not give them back
// to it on the strength of a view that may still be stale. Kept to the
// microsecond, as a Lease's acquireTime is.
func (a *Agent) newTerm(now time.Time) {
	t := now.Truncate(time.Microsecond)
	a.term.Store(&t)
}

// Term is when this node's current term of life began (see newTerm).
func (a *Agent) Term() time.Time { return *a.term.Load() }

// PeerStatus returns this node's standing among its peers.
func (a *Agent) PeerStatus() PeerStatus {
	if p := a.peerStatus.Load(); p != nil {
		return *p
	}
	return PeerStatus{}
}

// Relister is a Cluster that can list its Services afresh
// (watch.Cluster).
type Relister interface {
	// RestartInformers lists the Services, Nodes and EndpointSlices
	// afresh, in the background.
	RestartInformers(ctx context.Context)
	// ServicesListedAt is when the Services in use were last listed.
	ServicesListedAt() time.Time
}

// freshServices reports whether the Services this node plans with were
// listed after it asked (it asks on the first call). A node back in a
// quorum sees its own Lease renewed when its API is back, maybe before
// its Services show the owner record another node wrote while it was
// out: the Lease watch and the Services informers are listed afresh at
// once when the API comes back, and planning on the Lease event from the
// old record, a node back from a pulled cable took its address back after
// answering beside the new owner for 2 s (CI, 6 December 2026), as did a
// node that had been silent. A Cluster that cannot list afresh is taken
// as fresh.
func (a *Agent) freshServices(l *loop) bool {
	r, ok := l.cluster.(Relister)
	if !ok || l.ctx == nil {
		return true
	}
	if l.relisted.IsZero() {
		l.relisted = time.Now()
		r.RestartInformers(l.ctx)
	}
	return r.ServicesListedAt().After(l.relisted)
}

// Silent reports whether this node tells its peers that it does not
// answer at L2, so that they count it out as an owner: it came back into
// a quorum and has not seen its own Lease renewed for the liveness
// Lease's duration since (its API is out of reach). It waits for a fresh
// view of the API before it answers (it may have missed what the others
// did while it was out), and while the API stays out of reach the others,
// seeing it alive, would otherwise leave its addresses unanswered (seen
// in CI: a starved owner cut from the API doubted its peers for a moment
// and its address went unanswered until the cut ended).
func (a *Agent) Silent() bool { return a.silent.Load() }

func (a *Agent) setSilent(l *loop, on bool) {
	if a.silent.Swap(on) == on {
		return
	}
	if on {
		a.log.Warn("back in a quorum of its peers, but its own Lease is not seen renewed: telling the peers it does not answer at L2, so that another node answers its addresses (is the API server out of reach?)",
			event.Attr(event.Silent), "since", l.rejoined.Format(time.RFC3339Nano), "waited", l.fallbackLease())
	} else {
		a.log.Info("no longer telling the peers it is silent", event.Attr(event.Silent), "silent", false)
	}
}

// PeerKick is signalled when PeerStatus's State or View changes: the
// Lease that publishes them is renewed at once.
func (a *Agent) PeerKick() <-chan struct{} { return a.peerKick }

// fence takes this node out of every L2 answer.
func fence(ds []Decision) []Decision {
	for i, d := range ds {
		if d.Mode == ModeL2 && d.Announce {
			ds[i].Announce, ds[i].Reason, ds[i].Interfaces = false, ReasonFenced, nil
		}
	}
	return ds
}
