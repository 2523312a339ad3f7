package controlplane

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/kubetest"
)

// fakeVIP records what the election asks of the VIP.
type fakeVIP struct {
	mu           sync.Mutex
	held         bool
	takes, drops int
}

func (f *fakeVIP) Take() error  { f.mu.Lock(); f.held = true; f.takes++; f.mu.Unlock(); return nil }
func (f *fakeVIP) Renew() error { return nil }
func (f *fakeVIP) Drop() error  { f.mu.Lock(); f.held = false; f.drops++; f.mu.Unlock(); return nil }
func (f *fakeVIP) isHeld() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.held }

// kubeconfigVia writes c's kubeconfig with server replaced, as kubeadm's
// admin.conf names the control-plane endpoint rather than this node.
func kubeconfigVia(t *testing.T, c *kubetest.Cluster, server string) string {
	data, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), c.URL, server, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type candidate struct {
	name   string
	vip    *fakeVIP
	cp     *Election
	cancel context.CancelFunc
	done   chan struct{}
}

func startCandidate(t *testing.T, name, kubeconfig, local string) *candidate {
	return startCandidateWith(t, name, kubeconfig, local, nil)
}

// startCandidateWith is startCandidate with tune applied to the Election
// before it runs.
func startCandidateWith(t *testing.T, name, kubeconfig, local string, tune func(*Election)) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	cd := &candidate{name: name, vip: &fakeVIP{}, cancel: cancel, done: make(chan struct{})}
	cd.cp = &Election{
		// Long enough that only the watch can explain a quick takeover.
		Lease: election.Lease{Namespace: "kube-system", Name: "lbd-cp", Identity: name,
			Duration: 20 * time.Second, RenewDeadline: 15 * time.Second, RetryPeriod: 300 * time.Millisecond},
		Connect: func() (kubernetes.Interface, error) {
			c, _, err := LocalClient(kubeconfig, local, time.Second)
			return c, err
		},
		Health: Health{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, FailureThreshold: 2},
		VIP:    cd.vip, VIPs: "192.0.2.10",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name),
	}
	if tune != nil {
		tune(cd.cp)
	}
	go func() { defer close(cd.done); cd.cp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-cd.done })
	return cd
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControlPlaneElection runs two candidates against a real API server,
// with a kubeconfig whose server is unreachable (as the VIP is before
// anyone holds it): they must talk to the local URL only, verify its
// certificate against the kubeconfig's host name, elect exactly one
// holder, and hand over through the watch when the holder stops.
func TestControlPlaneElection(t *testing.T) {
	c := kubetest.Start(t)
	// "localhost" is in the test certificate; port 1 answers nothing.
	kc := kubeconfigVia(t, c, "https://localhost:1")
	a := startCandidate(t, "cp-a", kc, c.URL)
	b := startCandidate(t, "cp-b", kc, c.URL)
	holderOfLease := func() string {
		l, err := c.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "lbd-cp", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return holder(l)
	}
	var leader, follower *candidate
	waitUntil(t, 10*time.Second, "one holder", func() bool {
		switch {
		case a.vip.isHeld() && !b.vip.isHeld() && holderOfLease() == "cp-a":
			leader, follower = a, b
		case b.vip.isHeld() && !a.vip.isHeld() && holderOfLease() == "cp-b":
			leader, follower = b, a
		}
		return leader != nil
	})
	time.Sleep(time.Second)
	if !leader.vip.isHeld() || follower.vip.isHeld() {
		t.Fatalf("the holder changed without cause")
	}
	if s := follower.cp.Status(); s.Holder != leader.name || s.Leading || !s.APIReady {
		t.Errorf("follower status %+v", s)
	}

	stopped := time.Now()
	leader.cancel()
	<-leader.done
	if leader.vip.isHeld() {
		t.Fatal("the stopped holder kept the VIP")
	}
	t.Logf("holder stopped in %v", time.Since(stopped).Round(time.Millisecond))
	// The Lease lasts 20s: only the release and the watch can move it
	// this soon.
	waitUntil(t, 3*time.Second, "the follower taking the released Lease", func() bool {
		return follower.vip.isHeld() && holderOfLease() == follower.name
	})
	t.Logf("hand-over in %v", time.Since(stopped).Round(time.Millisecond))
}

// TestReleaseOfAChangedLease: the holder's copy of its Lease is stale
// when it stops (someone labelled the Lease, or a renewal cut short by the
// shutdown was written after all); the release must still clear the Lease,
// so that the follower takes it at once rather than after Duration (20s).
// Seen in CI as a 2s gap on one graceful stop in three.
func TestReleaseOfAChangedLease(t *testing.T) {
	c := kubetest.Start(t)
	kc := kubeconfigVia(t, c, "https://localhost:1")
	// Renewals 10s apart: the outside write stays unseen by the holder.
	slow := func(e *Election) { e.Lease.RetryPeriod = 10 * time.Second }
	a := startCandidateWith(t, "cp-a", kc, c.URL, slow)
	waitUntil(t, 10*time.Second, "cp-a holding the VIP", a.vip.isHeld)
	b := startCandidateWith(t, "cp-b", kc, c.URL, slow)
	time.Sleep(500 * time.Millisecond) // b has seen the Lease
	leases := c.Client.CoordinationV1().Leases("kube-system")
	l, err := leases.Get(context.Background(), "lbd-cp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Labels["example.com/audited"] = "yes"
	if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.cancel()
	<-a.done
	got, err := leases.Get(context.Background(), "lbd-cp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := holder(got); h == "cp-a" {
		t.Fatalf("the stopped holder left the Lease naming it (resourceVersion %s)", got.ResourceVersion)
	}
	waitUntil(t, 3*time.Second, "cp-b taking the released Lease", b.vip.isHeld)
}

// TestLocalClientVerifiesTLS: the local API server's certificate is
// checked against the kubeconfig's server host; a name it does not carry
// fails.
func TestLocalClientVerifiesTLS(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	good, _, err := LocalClient(kubeconfigVia(t, c, "https://localhost:1"), c.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := readyz(ctx, good, 2*time.Second); err != nil {
		t.Fatalf("readyz through the local URL: %v", err)
	}
	bad, _, err := LocalClient(kubeconfigVia(t, c, "https://192.0.2.77:6443"), c.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := readyz(ctx, bad, 2*time.Second); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a certificate without the kubeconfig's host was accepted: %v", err)
	}
}

// TestHandoverOverlap: the old holder keeps the VIP until a gratuitous
// packet sent at least 1s (neigh/locktime) after the first has gone out.
func TestHandoverOverlap(t *testing.T) {
	for _, c := range []struct {
		count    int
		interval time.Duration
		want     time.Duration
	}{
		{3, time.Second, 1100 * time.Millisecond},            // the default: the second packet
		{5, 300 * time.Millisecond, 1300 * time.Millisecond}, // the fifth, sent at 1.2s
		{1, time.Second, 1100 * time.Millisecond},            // one packet: locktime and a margin
		{2, 200 * time.Millisecond, 1100 * time.Millisecond},
	} {
		if got := HandoverOverlapFor(c.count, c.interval); got != c.want {
			t.Errorf("count %d interval %v: %v, want %v", c.count, c.interval, got, c.want)
		}
	}
}
