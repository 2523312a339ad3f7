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

// BenchmarkCPFailover measures failover of the control-plane VIP in the
// lab, with default settings: a client opens a TCP connection to VIP:6443
// every 20ms. For each way of losing the holder, a sub-benchmark runs b.N
// failovers and reports the longest time between two successful
// connections (gap-max-s, gap-p50-s), the time from the event to another
// node holding the VIP (move-max-s, move-p50-s) and the connections that
// failed or took 900ms or more, per failover. "idle" reports the holder's
// and a follower's CPU and RSS over 2 idle seconds per b.N. docs/vip.md has the
// figures, scripts/bench.sh the bounds:
//
//	go test ./cmd/lbd -run '^$' -bench CPFailover -benchtime 10x -timeout 60m
func BenchmarkCPFailover(b *testing.B) {
	l := bootCPLab(b)
	l.waitSoleHolder(5 * time.Second)
	p := l.probe(net.JoinHostPort(vip4, "6443"))
	defer p.Close()

	b.Run("idle", func(b *testing.B) {
		l.t = b
		idle(b, l, time.Duration(b.N)*2*time.Second)
	})
	scenarios := []struct {
		name    string
		fail    func(n *cpNode)
		restore func(n *cpNode)
	}{
		{"kill9", func(n *cpNode) { sendSignal(l.t, n, syscall.SIGKILL) }, func(n *cpNode) { l.waitExit(n, syscall.SIGKILL); l.startLbd(n) }},
		{"apikill", func(n *cpNode) {
			if err := n.api.Kill(); err != nil {
				l.t.Fatal(err)
			}
		}, func(n *cpNode) { l.startAPI(n) }},
		{"cable", func(n *cpNode) { l.lab.Unplug(n.host) }, func(n *cpNode) { l.lab.Plug(n.host) }},
		{"sigterm", func(n *cpNode) { sendSignal(l.t, n, syscall.SIGTERM) }, func(n *cpNode) { l.waitExit(n, syscall.SIGTERM); l.startLbd(n) }},
	}
	for _, s := range scenarios {
		b.Run(s.name, func(b *testing.B) {
			l.t = b
			var gaps, moves []time.Duration
			failed := 0
			for i := 0; b.Loop(); i++ {
				old := l.waitSoleHolder(10 * time.Second)
				// Let the client settle on the current holder, and start
				// at a random point of the renew period.
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
						b.Fatalf("%s: no takeover within 15s", s.name)
					}
					time.Sleep(5 * time.Millisecond)
				}
				l.waitSoleHolder(10*time.Second, old)
				l.waitConnects(p, time.Now())
				time.Sleep(200 * time.Millisecond)
				gap, f, _ := p.Outage(at)
				gaps, moves, failed = append(gaps, gap), append(moves, took), failed+f
				b.Logf("%s run %d: %s, gap %v, VIP moved after %v, %d failed or slow connections", s.name, i+1, old.name, gap.Round(time.Millisecond), took.Round(time.Millisecond), f)
				s.restore(old)
				time.Sleep(time.Second)
			}
			b.ReportMetric(slices.Max(gaps).Seconds(), "gap-max-s")
			b.ReportMetric(percentile(gaps, 0.5).Seconds(), "gap-p50-s")
			b.ReportMetric(slices.Max(moves).Seconds(), "move-max-s")
			b.ReportMetric(percentile(moves, 0.5).Seconds(), "move-p50-s")
			b.ReportMetric(float64(failed)/float64(len(gaps)), "failed/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func sendSignal(t testing.TB, n *cpNode, sig syscall.Signal) {
	if err := syscall.Kill(n.lbd.pid, sig); err != nil {
		t.Fatal(err)
	}
}

// idle reports the CPU use (percent of one core) and the RSS (MiB, the
// highest of samples every second) of the holder's and a follower's lbd
// over span.
func idle(b *testing.B, l *cpLab, span time.Duration) {
	leader := l.waitSoleHolder(5 * time.Second)
	var follower *cpNode
	for _, n := range l.nodes {
		if n != leader {
			follower = n
		}
	}
	c0, c1 := cpuTicks(leader.lbd.pid), cpuTicks(follower.lbd.pid)
	var r0, r1 int
	for range int(span / time.Second) {
		time.Sleep(time.Second)
		r0, r1 = max(r0, rssKiB(leader.lbd.pid)), max(r1, rssKiB(follower.lbd.pid))
	}
	d0, d1 := cpuTicks(leader.lbd.pid)-c0, cpuTicks(follower.lbd.pid)-c1
	pct := func(ticks int) float64 { return float64(ticks) / 100 / span.Seconds() * 100 } // USER_HZ 100
	b.ReportMetric(pct(d0), "holder-cpu-%")
	b.ReportMetric(pct(d1), "follower-cpu-%")
	b.ReportMetric(float64(r0)/1024, "holder-RSS-MiB")
	b.ReportMetric(float64(r1)/1024, "follower-RSS-MiB")
	b.ReportMetric(0, "ns/op")
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
