package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControlPlaneFailoverFigures measures failover of the control-plane
// VIP in the lab, with default settings: a client opens a TCP connection
// to VIP:6443 every 20ms, and for each way of losing the leader the
// longest time between two successful connections is recorded, over
// LBD_CP_BENCH_RUNS runs (at least 10 for the published figures). It
// prints figures and asserts nothing about them; it runs only when
// LBD_CP_BENCH_RUNS is set (as root):
//
//	LBD_CP_BENCH_RUNS=10 go test -run TestControlPlaneFailoverFigures -v -timeout 60m ./cmd/lbd/
func TestControlPlaneFailoverFigures(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("LBD_CP_BENCH_RUNS"))
	if runs <= 0 {
		t.Skip("set LBD_CP_BENCH_RUNS=N to measure failover figures")
	}
	l := bootCPLab(t)
	l.waitSoleHolder(5 * time.Second)
	p := l.probe(net.JoinHostPort(vip4, "6443"))
	defer p.close()

	idle(t, l)

	type figures struct {
		name     string
		gaps     []time.Duration // longest client gap per run
		takeover []time.Duration // from the event to another node holding the VIP
		failed   int
	}
	scenarios := []struct {
		name    string
		fail    func(n *cpNode)
		restore func(n *cpNode)
	}{
		{"leader crash (kill -9 lbd)", func(n *cpNode) { sendSignal(t, n, syscall.SIGKILL) }, func(n *cpNode) { l.waitExit(n, syscall.SIGKILL); l.startLbd(n) }},
		{"API server death (kill -9)", func(n *cpNode) {
			if err := n.api.Kill(); err != nil {
				t.Fatal(err)
			}
		}, func(n *cpNode) { l.startAPI(n) }},
		{"cable pull", func(n *cpNode) { l.lab.Unplug(n.host) }, func(n *cpNode) { l.lab.Plug(n.host) }},
		{"graceful stop (SIGTERM)", func(n *cpNode) { sendSignal(t, n, syscall.SIGTERM) }, func(n *cpNode) { l.waitExit(n, syscall.SIGTERM); l.startLbd(n) }},
	}
	var all []figures
	for _, s := range scenarios {
		f := figures{name: s.name}
		for range runs {
			old := l.waitSoleHolder(10 * time.Second)
			// Let the client settle on the current holder, and start at
			// a random point of the renew period.
			time.Sleep(500*time.Millisecond + time.Duration(time.Now().UnixNano()%400)*time.Millisecond)
			at := time.Now()
			s.fail(old)
			var took time.Duration
			for {
				if hs := l.holders(); len(hs) >= 1 && !slices.Contains(hs, old) || len(hs) == 2 {
					took = time.Since(at)
					break
				}
				if time.Since(at) > 15*time.Second {
					t.Fatalf("%s: no takeover within 15s", s.name)
				}
				time.Sleep(5 * time.Millisecond)
			}
			l.waitSoleHolder(10*time.Second, old)
			l.waitConnects(p, time.Now())
			time.Sleep(200 * time.Millisecond)
			gap, failed := p.outage(at)
			f.gaps = append(f.gaps, gap)
			f.takeover = append(f.takeover, took)
			f.failed += failed
			s.restore(old)
			time.Sleep(time.Second)
		}
		t.Logf("%s: %s", f.name, summary(f.gaps))
		all = append(all, f)
	}
	fmt.Printf("\ncontrol-plane VIP failover, %d runs each, default settings (lease 2s/1.5s/400ms, health 500ms x3)\n", runs)
	fmt.Printf("%-28s %-40s %-40s %s\n", "scenario", "client gap (longest / p50 / p99)", "event -> VIP on another node", "failed or >=900ms connections")
	for _, f := range all {
		fmt.Printf("%-28s %-40s %-40s %d\n", f.name, summary(f.gaps), summary(f.takeover), f.failed)
	}
}

func sendSignal(t *testing.T, n *cpNode, sig syscall.Signal) {
	if err := syscall.Kill(n.lbd.pid, sig); err != nil {
		t.Fatal(err)
	}
}

func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(float64(len(s)-1)*p + 0.5)
		return s[i]
	}
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("%s / %s / %s", r(s[len(s)-1]), r(q(0.5)), r(q(0.99)))
}

// idle prints the CPU use and RSS of the leader's and a follower's lbd
// over 20 idle seconds.
func idle(t *testing.T, l *cpLab) {
	leader := l.waitSoleHolder(5 * time.Second)
	var follower *cpNode
	for _, n := range l.nodes {
		if n != leader {
			follower = n
		}
	}
	const span = 20 * time.Second
	c0, c1 := cpuTicks(leader.lbd.pid), cpuTicks(follower.lbd.pid)
	time.Sleep(span)
	d0, d1 := cpuTicks(leader.lbd.pid)-c0, cpuTicks(follower.lbd.pid)-c1
	pct := func(ticks int) float64 { return float64(ticks) / 100 / span.Seconds() * 100 } // USER_HZ 100
	fmt.Printf("\nidle lbd over %v: leader %.2f%% CPU, RSS %s; follower %.2f%% CPU, RSS %s\n",
		span, pct(d0), rss(leader.lbd.pid), pct(d1), rss(follower.lbd.pid))
}

func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		if after, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(after)
		}
	}
	return "?"
}
