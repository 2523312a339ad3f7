package main

import (
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// bootCPLab starts the lab the way a kubeadm cluster boots: every lbd
// first, before its kubeconfig or any API server exists; then cp1's API
// server, whose node must hold the VIP within 1s of it being ready; then
// the other two. It returns the lab with cp1 holding the VIP.
func bootCPLab(t testing.TB) *cpLab {
	t.Helper()
	l := newCPLab(t)
	for _, n := range l.nodes {
		l.startLbd(n)
	}
	// Nothing to campaign with yet: lbd waits, without exiting.
	time.Sleep(700 * time.Millisecond)
	for _, n := range l.nodes {
		if !n.running() {
			t.Fatalf("lbd on %s exited while waiting for the API server", n.name)
		}
		if n.hasVIP(vip4) {
			t.Fatalf("%s holds the VIP with no API server", n.name)
		}
	}
	l.writeKubeconfig()
	cp1 := l.nodes[0]
	l.startAPI(cp1)
	ready := time.Now()
	for !cp1.hasVIP(vip4) || !cp1.hasVIP(vip6) {
		if time.Since(ready) > time.Second {
			t.Fatalf("cp1 does not hold the VIP 1s after its API server became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("bootstrap: cp1 holds the VIP %v after its API server is ready", time.Since(ready).Round(time.Millisecond))
	done := make(chan struct{})
	go func() { defer close(done); l.startAPI(l.nodes[1]) }()
	l.startAPI(l.nodes[2])
	<-done
	return l
}

// waitConnects waits until the client's connections to the VIP succeed.
func (l *cpLab) waitConnects(p *netlab.Prober, after time.Time) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !p.OKAfter(after) {
		if time.Now().After(deadline) {
			l.t.Fatalf("no connection to the VIP succeeded within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestControlPlaneVIP(t *testing.T) {
	labParallel(t, 55*time.Second) // a lab of its own, beside the others (labsched_test.go)
	l := bootCPLab(t)
	leader := l.waitSoleHolder(5 * time.Second)
	if leader.name != "cp1" {
		t.Fatalf("leader %s, want cp1 (the first ready)", leader.name)
	}
	for _, addr := range []string{net.JoinHostPort(vip4, "6443"), net.JoinHostPort(vip6, "6443")} {
		if err := l.dialVIP(addr); err != nil {
			t.Fatalf("client cannot reach the API server at %s: %v", addr, err)
		}
	}
	p := l.probe(net.JoinHostPort(vip4, "6443"))
	defer p.Close()

	t.Run("lbd killed", func(t *testing.T) {
		old := l.waitSoleHolder(5 * time.Second)
		at := time.Now()
		l.stopLbd(old, syscall.SIGKILL)
		next := l.waitSoleHolder(10*time.Second, old)
		l.waitConnects(p, time.Now())
		gap, _, _ := p.Outage(at)
		t.Logf("kill -9 of %s's lbd: %s took over; longest gap %v", old.name, next.name, gap.Round(time.Millisecond))
		l.startLbd(old)
	})

	t.Run("API server killed", func(t *testing.T) {
		old := l.waitSoleHolder(5 * time.Second)
		at := time.Now()
		if err := old.api.Kill(); err != nil {
			t.Fatal(err)
		}
		next := l.waitSoleHolder(10*time.Second, old)
		l.waitConnects(p, time.Now())
		if !old.running() {
			t.Fatalf("lbd on %s exited when its API server died", old.name)
		}
		gap, _, _ := p.Outage(at)
		t.Logf("kill -9 of %s's kube-apiserver: %s took over; longest gap %v", old.name, next.name, gap.Round(time.Millisecond))
		l.startAPI(old)
	})

	t.Run("cable pulled", func(t *testing.T) {
		old := l.waitSoleHolder(5 * time.Second)
		// The client knows the VIP's MAC for both families.
		if err := l.dialVIP(net.JoinHostPort(vip6, "6443")); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		l.lab.Unplug(old.host)
		next := l.waitSoleHolder(10*time.Second, old)
		// Only the new holder's gratuitous ARP and unsolicited NA can
		// update the client's entries this soon (otherwise they age and
		// are probed for many seconds).
		for _, vip := range []string{vip4, vip6} {
			deadline := time.Now().Add(time.Second)
			for !strings.Contains(l.client.Must("ip", "neigh", "show", vip), next.host.MAC) {
				if time.Now().After(deadline) {
					t.Fatalf("client's neighbour entry for %s is not %s's MAC %s 1s after the takeover: %s",
						vip, next.name, next.host.MAC, l.client.Must("ip", "neigh", "show", vip))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		l.waitConnects(p, time.Now())
		gap, _, _ := p.Outage(at)
		t.Logf("cable of %s pulled: %s took over; longest gap %v", old.name, next.name, gap.Round(time.Millisecond))
		l.lab.Plug(old.host)
		// The old holder could not renew, so it dropped the VIP: after
		// the cable returns exactly one node holds it, and it stays so.
		time.Sleep(3 * time.Second)
		if now := l.waitSoleHolder(5 * time.Second); now != next {
			t.Fatalf("after the cable returned, %s holds the VIP; want %s to keep it", now.name, next.name)
		}
	})

	t.Run("SIGTERM hands over", func(t *testing.T) {
		old := l.waitSoleHolder(5 * time.Second)
		// Let the prober see the current holder first.
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		l.stopLbd(old, syscall.SIGTERM)
		stopped := time.Since(at)
		next := l.waitSoleHolder(5*time.Second, old)
		time.Sleep(500 * time.Millisecond)
		gap, failed, _ := p.Outage(at)
		t.Logf("SIGTERM to %s's lbd: exited after %v, %s took over; longest gap %v, %d failed connections",
			old.name, stopped.Round(time.Millisecond), next.name, gap.Round(time.Millisecond), failed)
		if failed > 0 {
			t.Errorf("%d connections to the VIP failed during a planned hand-over", failed)
		}
		// How fast the VIP moves is BenchmarkCPFailover/sigterm's figure
		// (bounded in scripts/bench.sh), not an assertion here: this lbd
		// runs with the race detector.
		l.startLbd(old)
	})

	t.Run("reload", func(t *testing.T) {
		leader := l.waitSoleHolder(5 * time.Second)
		transitions := func() string {
			var s []string
			for k, v := range leader.metrics(t) {
				if strings.HasPrefix(k, "lbd_control_plane_transitions_total") {
					s = append(s, k+"="+v)
				}
			}
			slices.Sort(s)
			return strings.Join(s, " ")
		}
		before := transitions()
		data, err := os.ReadFile(leader.cfg)
		if err != nil {
			t.Fatal(err)
		}
		// An unrelated change: the VIP stays put.
		replace(t, leader.cfg, strings.Replace(string(data), "level: info", "level: debug", 1))
		if out, err := leader.host.Run(lbdBin, "reload", "-c", leader.cfg); err != nil {
			t.Fatalf("lbd reload: %v\n%s", err, out)
		}
		if now := l.waitSoleHolder(time.Second); now != leader || transitions() != before {
			t.Errorf("an unrelated reload moved the VIP: holder %s, transitions %s -> %s", now.name, before, transitions())
		}
		// A control_plane change applies live: the election starts anew
		// and exactly one node holds the VIP afterwards.
		replace(t, leader.cfg, strings.Replace(string(data), "interface: eth0", "interface: eth0\n  health: {interval: 400ms, timeout: 300ms}", 1))
		if out, err := leader.host.Run(lbdBin, "reload", "-c", leader.cfg); err != nil {
			t.Fatalf("lbd reload: %v\n%s", err, out)
		}
		l.waitSoleHolder(5 * time.Second)
		if !leader.running() {
			t.Fatal("lbd exited on reload")
		}
	})

	t.Run("status and metrics", func(t *testing.T) {
		leader := l.waitSoleHolder(5 * time.Second)
		time.Sleep(time.Second) // a few renewals by the current leader
		m := leader.metrics(t)
		for k, want := range map[string]string{
			"lbd_control_plane_leader":    "1",
			"lbd_control_plane_api_ready": "1",
		} {
			if m[k] != want {
				t.Errorf("%s on %s = %q, want %s", k, leader.name, m[k], want)
			}
		}
		found := false
		for k, v := range m {
			// Every reason is exported from the start, at 0.
			if strings.HasPrefix(k, `lbd_control_plane_transitions_total{direction="acquired"`) && v != "0" {
				found = true
			}
		}
		if !found || m["lbd_control_plane_lease_renew_seconds_count"] == "" || m["lbd_control_plane_lease_renew_seconds_count"] == "0" {
			t.Errorf("metrics of %s lack transitions or renewals: %v", leader.name, m)
		}
		out, err := leader.host.Run(lbdBin, "status", "-c", leader.cfg)
		if err != nil || !strings.Contains(out, "leader: holds the VIP") || !strings.Contains(out, "Lease held by "+leader.name) {
			t.Errorf("lbd status on the leader: %v\n%s", err, out)
		}
		var follower *cpNode
		for _, n := range l.nodes {
			if n != leader {
				follower = n
			}
		}
		out, err = follower.host.Run(lbdBin, "status", "-c", follower.cfg)
		if err != nil || !strings.Contains(out, "follower: "+leader.name+" holds the VIP") {
			t.Errorf("lbd status on a follower: %v\n%s", err, out)
		}
	})
}
