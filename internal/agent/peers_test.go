package agent

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
)

// fakePeers is a hand-written PeerSource. Tests that run the agent's
// loop change it under mu.
type fakePeers struct {
	mu      sync.Mutex
	alive   map[string]Peer
	unheard time.Duration
	gone    []string
	watched bool
}

func (f *fakePeers) Peers() map[string]Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.alive)
}
func (f *fakePeers) Changed() <-chan struct{} { return nil }
func (f *fakePeers) Unheard() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unheard
}
func (f *fakePeers) Gone() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gone)
}
func (f *fakePeers) WatchLeases(on bool) { f.mu.Lock(); f.watched = on; f.mu.Unlock() }

func peerConfig(t *testing.T) *config.Config {
	t.Helper()
	key := filepath.Join(t.TempDir(), "peers.key")
	if err := os.WriteFile(key, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return mustConfig(t, planConfig+"peers: {key_file: "+key+"}\n")
}

func heartbeat(node, state string, renewed time.Time, view ...string) cluster.Lease {
	return cluster.Lease{Node: node, RenewTime: renewed, Duration: 45 * time.Second, PeerState: state, Peers: view}
}

func TestMembership(t *testing.T) {
	cfg := peerConfig(t)
	fp := &fakePeers{watched: true} // as the daemon starts
	a, err := New("n1", cfg, slog.New(slog.DiscardHandler), nil, Options{Peers: fp})
	if err != nil {
		t.Fatal(err)
	}
	l := &loop{cfg: cfg}
	t0 := time.Now()
	alive := func(names ...string) {
		fp.alive = map[string]Peer{}
		for _, n := range names {
			fp.alive[n] = Peer{Since: t0.Add(-time.Hour), Interfaces: []string{AnyInterface}}
		}
	}
	names := func(ls []cluster.Lease) string {
		var out []string
		for _, x := range ls {
			out = append(out, x.Node)
		}
		return strings.Join(out, ",")
	}

	// Not running yet: nothing to plan with.
	if ls, fence, _ := a.membership(l, nil, t0); ls != nil || fence != "" || a.PeerStatus().State != "" {
		t.Fatalf("before the detector: %v %q %+v", ls, fence, a.PeerStatus())
	}
	all := []cluster.Lease{
		heartbeat("n1", cluster.PeerQuorum, t0, "n1", "n2", "n3"),
		heartbeat("n2", cluster.PeerQuorum, t0, "n1", "n2", "n3"),
		heartbeat("n3", cluster.PeerQuorum, t0, "n1", "n2", "n3"),
	}
	// Quorum: the live peers are the live nodes; one dead of three
	// (its heartbeat still valid) keeps the quorum.
	alive("n1", "n2")
	ls, fence, _ := a.membership(l, all, t0)
	if names(ls) != "n1,n2" || fence != "" || a.PeerStatus().State != cluster.PeerQuorum || a.PeerStatus().Known != 3 {
		t.Fatalf("two of three: %s %q %+v", names(ls), fence, a.PeerStatus())
	}
	if fp.watched {
		t.Errorf("in a quorum, the heartbeat Leases are still watched")
	}
	// Without the Leases (not watched), a node that died lately still
	// counts: two of three is a quorum, one of three is not.
	fp.gone = []string{"n3"}
	if _, fence, _ := a.membership(l, nil, t0); fence != "" || a.PeerStatus().Known != 3 {
		t.Fatalf("two of three, the third gone: %q %+v", fence, a.PeerStatus())
	}
	fp.gone = nil
	term := a.Term()
	if !ls[0].Since.Equal(term) {
		t.Errorf("this node's Since %v, want its term %v", ls[0].Since, term)
	}

	// Two of three, but no ack from any peer for 900 ms: it may be the
	// one cut off, and falls silent without waiting for its second
	// verdict. An ack 800 ms ago is still news.
	fp.unheard = 800 * time.Millisecond
	if _, fence, _ = a.membership(l, all, t0); fence != "" {
		t.Fatalf("two of three, an ack 800ms ago: %q", fence)
	}
	fp.unheard = 1000 * time.Millisecond
	if _, fence, _ = a.membership(l, all, t0); fence == "" || a.PeerStatus().State != cluster.PeerMinority {
		t.Fatalf("two of three, nothing heard for 1s: %q %+v", fence, a.PeerStatus())
	}
	fp.unheard = 0
	l.minority = time.Time{} // as if it had not happened

	// Alone of three: silent at once, minority.
	alive("n1")
	_, fence, wake := a.membership(l, all, t0)
	if fence == "" || a.PeerStatus().State != cluster.PeerMinority || !wake.Equal(t0.Add(cfg.Peers.FallbackAfter)) {
		t.Fatalf("alone: %q %+v wake %v", fence, a.PeerStatus(), wake)
	}
	if !fp.watched {
		t.Errorf("in a minority, the heartbeat Leases are not watched")
	}
	// After fallback_after, the others see each other without it: it
	// stays silent.
	without := []cluster.Lease{
		heartbeat("n1", cluster.PeerMinority, t0.Add(3*time.Second), "n1"),
		heartbeat("n2", cluster.PeerQuorum, t0.Add(time.Second), "n2", "n3"),
		heartbeat("n3", cluster.PeerQuorum, t0.Add(time.Second), "n2", "n3"),
	}
	t1 := t0.Add(cfg.Peers.FallbackAfter)
	if _, fence, _ = a.membership(l, without, t1); !strings.Contains(fence, "n2, n3 see each other without this node") {
		t.Fatalf("excluded by a quorum: %q", fence)
	}
	// One of them doubts for a moment (no ack within QuietAfter) and
	// publishes minority, with the same view: they still see each other
	// without it, and it stays silent.
	doubting := []cluster.Lease{
		without[0],
		heartbeat("n2", cluster.PeerMinority, t0.Add(2*time.Second), "n2", "n3"),
		without[2],
	}
	if _, fence, _ = a.membership(l, doubting, t1); !strings.Contains(fence, "n2, n3 see each other without this node") {
		t.Fatalf("excluded by a majority, one of it doubting: %q", fence)
	}
	// Nobody has a quorum (the port blocked everywhere), but its own
	// Lease is not seen renewed: silent still.
	blocked := []cluster.Lease{
		heartbeat("n1", cluster.PeerMinority, t0, "n1"),
		heartbeat("n2", cluster.PeerMinority, t1.Add(-time.Second), "n2"),
		heartbeat("n3", cluster.PeerMinority, t0, "n3"),
	}
	if _, fence, _ = a.membership(l, blocked, t1); !strings.Contains(fence, "does not see its own Lease renewed") {
		t.Fatalf("stale view of the API: %q", fence)
	}
	// With its own Lease fresh: fallback, with the nodes that renewed
	// within kubernetes.liveness.duration (n2, not n3).
	blocked[0].RenewTime = t1.Add(-100 * time.Millisecond)
	before := a.Term()
	ls, fence, _ = a.membership(l, blocked, t1)
	if fence != "" || names(ls) != "n1,n2" || a.PeerStatus().State != cluster.PeerFallback {
		t.Fatalf("fallback: %s %q %+v", names(ls), fence, a.PeerStatus())
	}
	if !a.Term().After(before) {
		t.Errorf("no new term on falling back")
	}

	// Back in a quorum: a new term, and silent until it sees its own
	// Lease renewed since.
	alive("n1", "n2", "n3")
	t2 := t1.Add(time.Second)
	_, fence, wake = a.membership(l, all, t2)
	if !strings.Contains(fence, "waiting to see its own Lease renewed") {
		t.Fatalf("just back: %q", fence)
	}
	// It looks again when it would tell the peers it is silent: after
	// the liveness Lease's duration without its own Lease renewed (its
	// API out of reach).
	if d := cfg.Kubernetes.Liveness.Duration; !wake.Equal(t2.Add(d)) {
		t.Errorf("just back: wake at %v, want %v (liveness duration %v after)", wake, t2.Add(d), d)
	}
	all[0].RenewTime = t2.Add(10 * time.Millisecond)
	if ls, fence, _ = a.membership(l, all, t2.Add(20*time.Millisecond)); fence != "" || len(ls) != 3 {
		t.Fatalf("back, own Lease renewed: %s %q", names(ls), fence)
	}
}

func TestFence(t *testing.T) {
	ds := fence([]Decision{{Mode: ModeL2, Announce: true, Reason: ReasonOwner, Interfaces: []string{"eth0"}}, {Mode: ModeBGP, Announce: true}})
	if ds[0].Announce || ds[0].Reason != ReasonFenced || !ds[1].Announce {
		t.Fatalf("fence: %+v", ds)
	}
}

// TestAgentGonePeerStaysPeer: with a peers section, a node the detector
// declared dead lately (Gone) may be cut off rather than gone, and
// still answer for a moment; its MAC stays a peer for the announcer's
// conflict detection as long as it is Gone, so its packets never make
// the new owner fall silent as before a foreign host (seen in CI: the
// new owner quiet for 30 s after the cut-off owner's one gratuitous
// ARP). Once forgotten, it is dropped after the usual margin.
func TestAgentGonePeerStaysPeer(t *testing.T) { synctest.Test(t, testAgentGonePeerStaysPeer) }

func testAgentGonePeerStaysPeer(t *testing.T) {
	cfg := peerConfig(t)
	macs := map[string]string{"node-a": "02:00:00:00:00:0a", "node-b": "02:00:00:00:00:0b", "node-c": "02:00:00:00:00:0c"}
	fp := &fakePeers{alive: map[string]Peer{}}
	for n, mac := range macs {
		fp.alive[n] = Peer{Since: t0, Interfaces: []string{AnyInterface}, MACs: []string{mac}}
	}
	a, err := New("node-a", cfg, slog.New(slog.DiscardHandler), nil, Options{
		Peers:    fp,
		Links:    func() ([]Link, error) { return []Link{{Name: "eth0", Carrier: true}}, nil },
		LinkPoll: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	peers := &peerRecorder{}
	a.AddSink(ModeL2, peers)
	runAgent(t, a)
	c := &fakeCluster{nodes: threeNodes().Nodes, leases: map[string]cluster.Lease{}}
	a.SetCluster(c)
	both := []string{macs["node-b"], macs["node-c"]}
	waitUntil(t, "both peers", func() bool { return slices.Equal(peers.current(), both) })

	// node-b is declared dead (cut off, say): Gone for ForgetDead.
	fp.mu.Lock()
	delete(fp.alive, "node-b")
	fp.gone = []string{"node-b"}
	fp.mu.Unlock()
	keep := cfg.L2.HandoverGrace + peerMargin
	for start := time.Now(); time.Since(start) < 3*keep; {
		a.NotifyLeases()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got := peers.current(); !slices.Equal(got, both) {
			t.Fatalf("%v after node-b was declared dead: peers %v, want still %v", time.Since(start), got, both)
		}
	}
	// Forgotten by the detector: dropped after the margin.
	fp.mu.Lock()
	fp.gone = nil
	fp.mu.Unlock()
	time.Sleep(keep + time.Second)
	a.NotifyLeases()
	synctest.Wait()
	if got := peers.current(); !slices.Equal(got, []string{macs["node-c"]}) {
		t.Errorf("after node-b was forgotten: peers %v, want only node-c's", got)
	}
}

func TestAgentSilentWhenAPIOutOfReach(t *testing.T) {
	synctest.Test(t, testAgentSilentWhenAPIOutOfReach)
}

// testAgentSilentWhenAPIOutOfReach: a node back in a quorum after a
// moment of doubt waits for its own Lease renewed before it answers; when
// that takes the liveness Lease's duration (its API out of reach), it
// tells its peers it is silent (Silent), and stops when the renewal shows.
func testAgentSilentWhenAPIOutOfReach(t *testing.T) {
	cfg := peerConfig(t)
	fp := &fakePeers{alive: map[string]Peer{}}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		fp.alive[n] = Peer{Since: t0, Interfaces: []string{AnyInterface}}
	}
	a, err := New("node-a", cfg, slog.New(slog.DiscardHandler), nil, Options{
		Peers:    fp,
		Links:    func() ([]Link, error) { return []Link{{Name: "eth0", Carrier: true}}, nil },
		LinkPoll: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	c := &fakeCluster{nodes: threeNodes().Nodes, leases: map[string]cluster.Lease{}}
	// settle: the agent has planned what it was told (it gathers changes
	// for 20 ms).
	settle := func() {
		a.NotifyLeases()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
	}
	renew := func() {
		c.mu.Lock()
		c.leases["node-a"] = heartbeat("node-a", cluster.PeerQuorum, time.Now(), "node-a", "node-b", "node-c")
		c.mu.Unlock()
		settle()
	}
	renew()
	a.SetCluster(c)
	waitUntil(t, "a quorum", func() bool { return a.PeerStatus().State == cluster.PeerQuorum })

	// No ack for a second: it doubts, then hears from its peers again.
	fp.mu.Lock()
	fp.unheard = time.Second
	fp.mu.Unlock()
	settle()
	if a.PeerStatus().State != cluster.PeerMinority {
		t.Fatalf("no ack for 1s: %+v", a.PeerStatus())
	}
	fp.mu.Lock()
	fp.unheard = 0
	fp.mu.Unlock()
	settle()
	back := time.Now()
	d := cfg.Kubernetes.Liveness.Duration
	// Within the liveness duration it waits, and says nothing to its peers.
	time.Sleep(d - 200*time.Millisecond)
	synctest.Wait()
	if a.Silent() {
		t.Fatalf("silent %v after it came back, before the liveness duration (%v)", time.Since(back), d)
	}
	if st := a.State(); st.Phase != PhaseFenced {
		t.Fatalf("back, its own Lease not renewed: phase %v, want fenced", st.Phase)
	}
	// Then, its own Lease still not renewed (the API out of reach), it
	// tells its peers it is silent, with no other event to wake it.
	time.Sleep(300 * time.Millisecond)
	synctest.Wait()
	if !a.Silent() {
		t.Fatalf("not silent %v after it came back with its own Lease not renewed", time.Since(back))
	}
	// Its own Lease renewed: it answers again, and says so.
	renew()
	if a.Silent() {
		t.Fatal("still silent after its own Lease was renewed")
	}
	if st := a.State(); st.Phase != PhaseAnnouncing {
		t.Errorf("own Lease renewed: phase %v, want announcing", st.Phase)
	}
}
