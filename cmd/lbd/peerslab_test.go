package main

// The L2 lab with a peers section: liveness from the peer detector, and
// the partitions issue 14 names, each held for 30 s and healed, with the
// client asking who answers for the address every 100 ms.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	lbdwatch "github.com/lbdproject/lbd/internal/watch"
)

// newPeersLab is the L2 lab with peer detection on every node (its
// InternalIPs on 198.51.100.0/24, a network a test can cut alone).
func newPeersLab(t testing.TB) *l2Lab {
	t.Helper()
	return newL2LabBin(t, timingBin(t), "peers: {key_file: "+writePeerKey(t)+"}\n", labAllocLease)
}

// writePeerKey writes a new peers' key file (mode 0600) and returns its
// path.
func writePeerKey(t testing.TB) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "peers.key")
	buf := make([]byte, 32)
	rand.Read(buf)
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(buf)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// cutPeer cuts (or heals) the peers' network from one node to another,
// one way: a blackhole route on from to to's InternalIP.
func cutPeer(from, to *labNode, on bool) {
	from.host.Must("ip", "route", routeOp(on), "blackhole", to.peerIP+"/32")
}

// cutPeers cuts the peers' network between n and the other nodes, both
// ways, or heals it; the segment and the API stay reachable.
func (l *l2Lab) cutPeers(n *labNode, on bool) {
	for _, o := range l.nodes {
		if o != n {
			cutPeer(n, o, on)
			cutPeer(o, n, on)
		}
	}
}

// cutAllPeers cuts (or heals) the peers' network between every two nodes.
func (l *l2Lab) cutAllPeers(on bool) {
	for _, n := range l.nodes {
		for _, o := range l.nodes {
			if o != n {
				cutPeer(n, o, on)
			}
		}
	}
}

// peerStates returns each running node's standing among its peers.
func (l *l2Lab) peerStates() map[string]string {
	out := map[string]string{}
	for _, n := range l.running() {
		if p := n.d.status(l.t).Peers; p != nil {
			out[n.name] = p.State
		}
	}
	return out
}

// partitionCut is how long each partition lasts, as issue 14 asks.
const partitionCut = 30 * time.Second

// newPeersLabUp is newPeersLab once every node is in a quorum of three
// and every heartbeat Lease says so.
func newPeersLabUp(t *testing.T) *l2Lab {
	l := newPeersLab(t)
	for _, n := range l.nodes {
		st := n.d.status(t)
		if st.Peers == nil || st.Peers.State != "quorum" || len(st.Peers.Alive) != 3 {
			t.Fatalf("%s's peers: %+v, want quorum with all three", n.name, st.Peers)
		}
	}
	waitFor(t, "every heartbeat Lease saying quorum with three peers", func() bool {
		leases, err := l.kc.Client.CoordinationV1().Leases("lbd").List(context.Background(), metav1.ListOptions{LabelSelector: lbdwatch.LeaseLabel})
		if err != nil || len(leases.Items) != 3 {
			return false
		}
		for _, ls := range leases.Items {
			if ls.Annotations[lbdwatch.AnnotationPeerState] != "quorum" || len(strings.Split(ls.Annotations[lbdwatch.AnnotationPeers], ",")) != 3 ||
				*ls.Spec.LeaseDurationSeconds != 45 {
				return false
			}
		}
		return true
	})
	return l
}

// TestL2PeersCuts: the steady state's Lease writes, and the owner cut
// from the API (alone, and with a 2 s loss of the peers' network
// everywhere), from its peers, and from everything, each for 30 s.
// TestL2PeersRestarts has the rest of the peers lab's cases, in a lab of
// its own beside it: the two take half the time one lab took.
func TestL2PeersCuts(t *testing.T) {
	timingLab(t, 235*time.Second)
	l := newPeersLabUp(t)
	const web = "192.0.2.200"

	t.Run("heartbeat", func(t *testing.T) {
		// Steady state: each node renews its Lease every 15s, not
		// every 500ms; 20s of watching sees at most two renewals per
		// node (today's Leases: 40).
		w, err := l.kc.Client.CoordinationV1().Leases("lbd").Watch(context.Background(), metav1.ListOptions{LabelSelector: lbdwatch.LeaseLabel})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		writes := 0
		deadline := time.After(20 * time.Second)
	watching:
		for {
			select {
			case ev := <-w.ResultChan():
				if ev.Type == watch.Modified {
					writes++
				}
			case <-deadline:
				break watching
			}
		}
		// The first events of a watch are the current objects (Added).
		t.Logf("%d Lease writes in 20s from 3 nodes", writes)
		if writes > 6 {
			t.Errorf("%d Lease writes in 20s from 3 nodes, want at most 6 (a heartbeat every 15s)", writes)
		}
	})

	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)

	for _, k := range []struct {
		name    string
		cut     func(o *labNode, on bool)
		moves   int           // during the cut; none on heal
		maxNone time.Duration // unanswered at most; 0: the default below
	}{
		// The owner's path to the API server is cut, not its peers nor
		// the clients: nothing moves (with Leases: two answerers).
		{"api-cut", l.cutAPI, 0, 0},
		// The same, and 1 s into it the peers' network is lost
		// everywhere for 2 s (less than peers.fallback_after): every
		// node falls silent, and each begins a new term as it comes
		// back, so the owner record no longer holds and the hash
		// winner, the owner again, owns. Back in a quorum, the owner
		// waits to see its own Lease renewed, which it cannot: after
		// the liveness duration (2 s) it tells its peers it is silent,
		// and another node takes the address. Seen in CI on a starved
		// host before that: the address unanswered until the cut
		// ended. Unanswered: the 2 s, the rejoin (peers rejoin every
		// 2 s), the 2 s, and the takeover.
		{"api-cut-peers-blip", func(o *labNode, on bool) {
			l.cutAPI(o, on)
			if on {
				time.Sleep(time.Second)
				l.cutAllPeers(true)
				time.Sleep(2 * time.Second)
				l.cutAllPeers(false)
			}
		}, 1, 10 * time.Second},
		// Its peers are cut, not the API nor the clients: it goes
		// silent as the others take its address, and stays silent.
		{"peers-cut", l.cutPeers, 1, 0},
		// Its cable is pulled: the others take its address; it does
		// not take it back on return.
		{"isolated", func(o *labNode, on bool) {
			if on {
				l.lab.Unplug(o.host)
			} else {
				l.lab.Plug(o.host)
			}
		}, 1, 0},
	} {
		t.Run(k.name, func(t *testing.T) {
			l.t = t
			defer func() { l.t = t }()
			o := l.owner(web)
			s := l.sampleAnswerers(web)
			time.Sleep(2 * time.Second)
			k.cut(o, true)
			time.Sleep(partitionCut)
			if k.name == "peers-cut" {
				st := o.d.status(t)
				if st.Peers == nil || st.Peers.State != "minority" || !strings.Contains(st.Peers.Why, "see each other without this node") {
					t.Errorf("the cut-off owner's peers after %v: %+v, want minority, the others seeing each other without it", partitionCut, st.Peers)
				}
				if a := l.addressOf(o, web); a.Announcing || a.Reason != "fenced" {
					t.Errorf("the cut-off owner's decision: %+v, want not announcing, fenced", a)
				}
			}
			k.cut(o, false)
			healAt := time.Now()
			time.Sleep(10 * time.Second)
			replies := s.stop()
			dual, none, moves := partitionFigures(replies, s.start.Add(time.Second), healAt.Add(10*time.Second))
			_, _, healMoves := partitionFigures(replies, healAt, healAt.Add(10*time.Second))
			t.Logf("owner %s: two answering for %v at most, none for %v, %d moves (%d after the heal)", o.name, dual, none, moves, healMoves)
			defer func() {
				if t.Failed() {
					t.Logf("who answered, 100 ms windows: %s", answerTimeline(replies, s.start.Add(time.Second), healAt.Add(10*time.Second)))
				}
			}()
			if dual > time.Second {
				t.Errorf("two nodes answered for %v, want at most 1s", dual)
			}
			if moves != k.moves || healMoves != 0 {
				t.Errorf("%d moves, %d of them after the heal; want %d, none after the heal", moves, healMoves, k.moves)
			}
			// While a healthy node can answer, the address is never
			// unanswered for longer than detecting the owner's loss
			// takes (about 0.7s); never when nothing has to move.
			maxNone := 1500 * time.Millisecond
			if k.moves == 0 {
				maxNone = 300 * time.Millisecond
			}
			if k.maxNone != 0 {
				maxNone = k.maxNone
			}
			if none > maxNone {
				t.Errorf("no node answered for %v, want at most %v", none, maxNone)
			}
			waitFor(t, "every node back in a quorum of three", func() bool {
				st := l.peerStates()
				return len(st) == 3 && st["node-a"] == "quorum" && st["node-b"] == "quorum" && st["node-c"] == "quorum"
			})
		})
	}
	l.t = t
}

// TestL2PeersRestarts: the whole API cut for 60 s, the peers' port
// blocked everywhere, a rolling restart, and a crashed owner's return.
func TestL2PeersRestarts(t *testing.T) {
	timingLab(t, 180*time.Second)
	l := newPeersLabUp(t)
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)

	t.Run("api-outage", func(t *testing.T) {
		// The whole API is unreachable for 60s: nothing changes.
		l.t = t
		defer func() { l.t = t }()
		o := l.owner(web)
		s := l.sampleAnswerers(web)
		time.Sleep(2 * time.Second)
		for _, n := range l.nodes {
			l.cutAPI(n, true)
		}
		time.Sleep(60 * time.Second)
		for _, n := range l.nodes {
			if a := l.addressOf(n, web); a.Owner != o.name {
				t.Errorf("60s into the outage, %s says the owner is %q, want %s", n.name, a.Owner, o.name)
			}
		}
		for _, n := range l.nodes {
			l.cutAPI(n, false)
		}
		time.Sleep(5 * time.Second)
		end := time.Now()
		replies := s.stop()
		dual, none, moves := partitionFigures(replies, s.start.Add(time.Second), end)
		t.Logf("owner %s: two answering for %v at most, none for %v, %d moves", o.name, dual, none, moves)
		if dual > 0 || none > 300*time.Millisecond || moves != 0 {
			t.Errorf("two answering for %v, none for %v, %d moves; want 0, at most 0.3s, 0", dual, none, moves)
			t.Logf("who answered, 100 ms windows: %s", answerTimeline(replies, s.start.Add(time.Second), end))
		}
	})
	l.t = t

	t.Run("fallback", func(t *testing.T) {
		// The peers' port is blocked everywhere: every node falls back
		// to the Leases after peers.fallback_after, and one answers.
		l.t = t
		defer func() { l.t = t }()
		l.cutAllPeers(true)
		waitFor(t, "every node in fallback", func() bool {
			st := l.peerStates()
			return st["node-a"] == "fallback" && st["node-b"] == "fallback" && st["node-c"] == "fallback"
		})
		// Each node begins a new term as it falls back, so the owner
		// record no longer holds and the address may move once, to the
		// hash winner (seen: taken by another node while the first
		// peers were declared dead, then by the winner): the owner is
		// read once that has settled.
		time.Sleep(3 * time.Second)
		o := l.owner(web)
		if who := l.announcers(web); !slices.Equal(who, []string{o.name}) {
			t.Errorf("in fallback, %v announce %s, want only %s", who, web, o.name)
		}
		if got := l.arpMACs(web, 3); !slices.Equal(got, []string{o.host.MAC}) {
			t.Errorf("in fallback, ARP answers for %s from %v, want only %s's %s", web, got, o.name, o.host.MAC)
		}
		for _, n := range l.nodes {
			m := l.metricsIn(n)
			if !strings.Contains(m, `lbd_peers_state{state="fallback"} 1`) || !strings.Contains(m, "lbd_peers_alive 1") || !strings.Contains(m, "lbd_peers_known 3") {
				t.Errorf("%s's metrics in fallback:\n%s", n.name, grepLines(m, "lbd_peers_"))
			}
		}
		l.cutAllPeers(false)
		waitFor(t, "every node back in a quorum", func() bool {
			st := l.peerStates()
			return st["node-a"] == "quorum" && st["node-b"] == "quorum" && st["node-c"] == "quorum"
		})
		if n := l.owner(web); n != o {
			t.Errorf("the owner moved from %s to %s when the peers came back", o.name, n.name)
		}
	})
	l.t = t

	t.Run("rolling", func(t *testing.T) {
		// Every lbd restarted in turn (SIGTERM, start, back in the
		// quorum) under a client probe: the address moves once for
		// each restart of its owner, with make-before-break, and never
		// for another node's.
		l.t = t
		defer func() { l.t = t }()
		s := l.sampleAnswerers(web)
		stop := l.traffic(web)
		time.Sleep(2 * time.Second) // the figures start 1 s in
		back := func(n *labNode) bool {
			st := n.d.status(t)
			return st.Peers != nil && st.Peers.State == "quorum" && strings.HasPrefix(st.Agent, "announcing")
		}
		want, logged := l.rollingRestart(web, back, nil)
		failed, reset, _ := stop()
		replies, end := s.stop(), time.Now()
		_, _, moves := partitionFigures(replies, s.start.Add(time.Second), end)
		t.Logf("rolling restart: %d moves seen by the client, %d in the logs (%d restarts of the owner), %d failed requests, %v", moves, logged, want, failed, reset)
		if moves != want || logged != want || failed != 0 || reset.instants > want {
			t.Errorf("%d moves seen, %d logged, %d failed, %v; want %d moves, none failed, resets only at the moves", moves, logged, failed, reset, want)
			t.Logf("who answered, 100 ms windows: %s", answerTimeline(replies, s.start.Add(time.Second), end))
		}
	})
	l.t = t

	t.Run("kill", func(t *testing.T) {
		// Every lbd started after the Service existed (the rolling
		// restart): the owner crashes, its address moves, and it does
		// not move back when the owner's lbd starts again.
		l.t = t
		defer func() { l.t = t }()
		o := l.owner(web)
		s := l.sampleAnswerers(web)
		time.Sleep(2 * time.Second)
		l.kill(o, 9)
		n := l.newOwner(web, o)
		time.Sleep(3 * time.Second)
		replies, end := s.stop(), time.Now()
		dual, none, moves := partitionFigures(replies, s.start.Add(time.Second), end)
		t.Logf("%s killed, %s took over; none answering for %v, two for %v, %d moves", o.name, n.name, none, dual, moves)
		if none > 1500*time.Millisecond || dual > 0 || moves != 1 {
			t.Errorf("none answering for %v, two for %v, %d moves; want at most 1.5s, 0, 1", none, dual, moves)
			t.Logf("who answered, 100 ms windows: %s", answerTimeline(replies, s.start.Add(time.Second), end))
		}
		l.start(o)
		waitFor(t, o.name+" back among its peers", func() bool { return l.peerStates()[o.name] == "quorum" })
		time.Sleep(2 * time.Second)
		if again := l.owner(web); again != n {
			t.Errorf("the address moved back to %s when it returned (l2.failback is false)", again.name)
		}
	})
}
