package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestL2APIOutage: the API server is unreachable from every node for 60s
// (a blackhole route to it in each node's namespace: packets vanish, as
// behind a firewall that drops them) while a client sends a request every
// 20ms. Nothing is withdrawn and nothing moves: the owner keeps answering
// ARP, every request is served by it, and every node's status says it is
// frozen. When the API returns, every node plans again and the address,
// its owner and the Service's status are unchanged.
func TestL2APIOutage(t *testing.T) {
	labParallel(t, 95*time.Second) // a lab of its own, beside the others (labsched_test.go)
	l := newL2Lab(t, "")
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)
	// A hand-over under way when the API goes leaves two nodes answering
	// for the whole outage (each frozen with its own view): the test
	// starts from a settled owner.
	o := l.settledOwner(web)
	if _, err := l.get(web, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.nodes {
		if code, body := l.readyz(n); code != 200 {
			t.Errorf("%s not ready before the outage: %d %s", n.name, code, body)
		}
	}

	stop := l.traffic(web)
	for _, n := range l.nodes {
		l.cutAPI(n, true)
	}
	cut := time.Now()
	frozen := map[string]bool{}
	for time.Since(cut) < 60*time.Second {
		got := l.arpMACs(web, 1)
		if len(got) == 0 {
			// No answer to one request can be the prober's or the owner's
			// process starved on a loaded machine (lab daemons run at the
			// tests' nice 19); nobody answering twice in a row is a fault.
			got = l.arpMACs(web, 1)
		}
		if !slices.Equal(got, []string{o.host.MAC}) {
			t.Errorf("%.0fs into the outage, ARP answers for %s from %v, want only the owner %s", time.Since(cut).Seconds(), web, got, o.name)
		}
		for _, n := range l.nodes {
			st := n.d.status(t)
			if strings.HasPrefix(st.Agent, "frozen") {
				frozen[n.name] = true
			}
			if a := l.addressOf(n, web); a.Owner != o.name {
				t.Errorf("%.0fs into the outage, %s says the owner is %q, want %s", time.Since(cut).Seconds(), n.name, a.Owner, o.name)
			}
		}
		time.Sleep(time.Second)
	}
	if len(frozen) != len(l.nodes) {
		t.Errorf("frozen during the outage: %v; every node should have said so", frozen)
	}
	// /readyz says what is wrong (the rolling playbook waits on it), and
	// the metrics the LbdNodeFrozen alert reads say it too.
	for _, n := range l.nodes {
		code, body := l.readyz(n)
		if code != 503 || !strings.Contains(body, "does not answer") || !strings.Contains(body, "frozen") {
			t.Errorf("%s's /readyz during the outage: %d %q, want 503 naming the API and the freeze", n.name, code, body)
		}
		m := l.metricsIn(n)
		if !strings.Contains(m, "lbd_agent_frozen 1") || !strings.Contains(m, "lbd_kubernetes_api_up 0") {
			t.Errorf("%s's metrics during the outage:\n%s", n.name, grepLines(m, "lbd_agent_frozen")+grepLines(m, "lbd_kubernetes_api_up"))
		}
	}
	for _, n := range l.nodes {
		l.cutAPI(n, false)
	}
	// The Leases are listed afresh as soon as a renewal succeeds again
	// (the informers' own backoff would take up to 30s): every node plans
	// again within seconds. 15s is a generous bound for that.
	healed := time.Now()
	for deadline := healed.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		back := 0
		for _, n := range l.nodes {
			if strings.HasPrefix(n.d.status(t).Agent, "announcing") {
				back++
			}
		}
		if back == len(l.nodes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes planning again 15s after the API returned", back, len(l.nodes))
		}
	}
	t.Logf("every node planning again %.1fs after the API returned", time.Since(healed).Seconds())
	for _, n := range l.nodes {
		waitFor(t, n.name+" ready again", func() bool { code, _ := l.readyz(n); return code == 200 })
	}
	time.Sleep(2 * time.Second) // a Lease duration: any move would have happened
	failed, reset, served := stop()
	if failed != 0 || reset.n != 0 || len(served) != 1 || served[o.name] == 0 {
		t.Errorf("during the outage and after: %d requests failed, %v, served by %v; want none, all by %s", failed, reset, served, o.name)
	}
	if got := l.owner(web); got != o {
		t.Errorf("owner after the outage %s, want %s (nothing moves)", got.name, o.name)
	}
	waitIPs(t, l.kc.Client, "default", "web", web)
}
