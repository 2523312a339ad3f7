package main

// Failover and API-write figures for L2 mode, as benchmarks: they report
// figures, and scripts/bench.sh holds them to bounds.

import (
	"context"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/netlab"
)

// connProbe opens a TCP connection to addr from the client every 20ms and
// records when each attempt started and whether it connected. Each has
// 500ms, less than the kernel's first SYN retransmission (1s): an attempt
// made during the outage fails rather than succeeding late, which would
// hide part of the gap.
type connProbe struct {
	mu       sync.Mutex
	attempts []attempt
	stop     chan struct{}
	wg       sync.WaitGroup
}

type attempt struct {
	at time.Time
	ok bool
}

func startProbe(client *netlab.Host, addr string) *connProbe {
	p := &connProbe{stop: make(chan struct{})}
	p.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.wg.Add(1)
			go func(at time.Time) {
				defer p.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				c, err := client.DialContext(ctx, "tcp", addr)
				if err == nil {
					c.Close()
				}
				p.mu.Lock()
				p.attempts = append(p.attempts, attempt{at, err == nil})
				p.mu.Unlock()
			}(time.Now())
		}
	})
	return p
}

// succeeded returns how many attempts connected so far.
func (p *connProbe) succeeded() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.attempts {
		if a.ok {
			n++
		}
	}
	return n
}

// finish stops the probe and returns the longest time between two
// successive successful attempts and the number of failed ones.
func (p *connProbe) finish() (gap time.Duration, failed int) {
	close(p.stop)
	p.wg.Wait()
	slices.SortFunc(p.attempts, func(a, b attempt) int { return a.at.Compare(b.at) })
	var last time.Time
	for _, a := range p.attempts {
		if !a.ok {
			failed++
			continue
		}
		if !last.IsZero() && a.at.Sub(last) > gap {
			gap = a.at.Sub(last)
		}
		last = a.at
	}
	return gap, failed
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// BenchmarkL2Failover measures the traffic gap at a client for three ways
// an owner goes away, with default timings: its node crashes (lbd and the
// node's service killed with SIGKILL, the kernel still up, so connections
// to it are refused until the client's neighbour entry moves), its cable
// is pulled, and lbd is stopped with SIGTERM (graceful). Each sub-benchmark
// runs b.N failovers and reports the longest gap (max-s), the median
// (p50-s) and failed connections per failover; scripts/bench.sh bounds
// them (docs/l2.md has the figures):
//
//	go test ./cmd/lbd -run '^$' -bench 'L2Failover$' -benchtime 10x -timeout 30m
func BenchmarkL2Failover(b *testing.B) { benchL2Failover(b, newL2Lab(b, "")) }

// BenchmarkL2FailoverPeers is BenchmarkL2Failover with liveness from the
// peer detector (a peers section on every node):
//
//	go test ./cmd/lbd -run '^$' -bench L2FailoverPeers -benchtime 10x -timeout 30m
func BenchmarkL2FailoverPeers(b *testing.B) { benchL2Failover(b, newPeersLab(b)) }

func benchL2Failover(b *testing.B, l *l2Lab) {
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(b, l.kc.Client, "default", "web", web)
	target := web + ":80"

	kinds := []struct {
		name    string
		fail    func(o *labNode)
		recover func(o *labNode)
	}{
		{"kill9", func(o *labNode) {
			o.standIn.Process.Kill()
			o.standIn.Wait()
			l.kill(o, syscall.SIGKILL)
		}, func(o *labNode) {
			l.startStandIn(o)
			l.start(o)
		}},
		{"cable", func(o *labNode) { l.lab.Unplug(o.host) }, func(o *labNode) {
			l.lab.Plug(o.host)
			waitFor(l.t, o.name+" to see the cluster again", func() bool {
				st := o.d.status(l.t)
				return strings.HasPrefix(st.Agent, "announcing") && !strings.Contains(st.Agent, "not answering")
			})
		}},
		{"sigterm", func(o *labNode) { l.kill(o, syscall.SIGTERM) }, func(o *labNode) { l.start(o) }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			l.t = b
			var gaps []time.Duration
			failed := 0
			for i := 0; b.Loop(); i++ {
				o := l.owner(web)
				if _, err := l.get(web, 2*time.Second); err != nil {
					b.Fatal(err)
				}
				p := startProbe(l.client, target)
				// The probe's first connections have been made.
				waitFor(b, "the probe to connect", func() bool { return p.succeeded() >= 5 })
				k.fail(o)
				n := l.newOwner(web, o)
				waitFor(b, "the client to move to "+n.name, func() bool { return l.neighMAC(web) == n.host.MAC })
				// Late attempts (each has 500ms) finish before the count.
				time.Sleep(600 * time.Millisecond)
				gap, f := p.finish()
				gaps, failed = append(gaps, gap), failed+f
				b.Logf("%s run %d: %s → %s, longest gap %v, %d failed connections", k.name, i+1, o.name, n.name, gap.Round(time.Millisecond), f)
				k.recover(o)
				waitFor(b, "every node planning", func() bool {
					for _, x := range l.nodes {
						if !strings.HasPrefix(x.d.status(b).Agent, "announcing") {
							return false
						}
					}
					return true
				})
			}
			b.ReportMetric(percentile(gaps, 0.5).Seconds(), "p50-s")
			b.ReportMetric(percentile(gaps, 0.99).Seconds(), "p99-s")
			b.ReportMetric(slices.Max(gaps).Seconds(), "max-s")
			b.ReportMetric(float64(failed)/float64(len(gaps)), "failed/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkAPIWrites counts lbd's API writes in steady state, three lbd
// nodes with every setting at its default, with 10 and then 1000 Services.
// Lease writes are counted by watching the Leases (every renewal is a new
// resourceVersion), split into the nodes' liveness Leases (per node) and
// the cluster-wide leader Leases; every other write comes from the API
// server's apiserver_request_total. It reports, for each Service count,
// liveness writes per node and second, cluster-wide Lease writes per
// second and other writes per second, and the ratio of all writes with
// 1000 Services to those with 10 (1 when Services cost no writes):
//
//	go test ./cmd/lbd -run '^$' -bench APIWrites -benchtime 1x -timeout 30m
func BenchmarkAPIWrites(b *testing.B) {
	window := 20 * time.Second
	if s := os.Getenv("LBD_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("LBD_BENCH_WINDOW: %v", err)
		}
		window = d
	}
	// Every setting at its default, the allocator Lease's too.
	l := newL2LabLease(b, "", "", labPoolV4, "2001:db8:1::/64")
	c := l.kc.Client
	ctx := context.Background()
	ipv6 := func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }

	// Every change to a Lease in the lbd namespace, by Lease name.
	var mu sync.Mutex
	leaseWrites := map[string]int{}
	w, err := c.CoordinationV1().Leases("lbd").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			if m, ok := ev.Object.(metav1.Object); ok {
				mu.Lock()
				leaseWrites[m.GetName()]++
				mu.Unlock()
			}
		}
	}()
	countLeases := func() (liveness, cluster int) {
		mu.Lock()
		defer mu.Unlock()
		for name, n := range leaseWrites {
			if strings.HasPrefix(name, "lbd-node-") {
				liveness += n
			} else {
				cluster += n
			}
		}
		return liveness, cluster
	}
	writes := func() (leases, other float64) {
		raw, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.SplitSeq(string(raw), "\n") {
			if !strings.HasPrefix(line, "apiserver_request_total{") {
				continue
			}
			lab := map[string]string{}
			for _, kv := range labelRE.FindAllStringSubmatch(line, -1) {
				lab[kv[1]] = kv[2]
			}
			switch lab["verb"] {
			case "POST", "PUT", "PATCH", "DELETE":
			default:
				continue
			}
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			if lab["resource"] == "leases" {
				leases += v
			} else {
				other += v
			}
		}
		return leases, other
	}
	measure := func(services int) float64 {
		time.Sleep(3 * time.Second)
		l0, c0 := countLeases()
		_, o0 := writes()
		time.Sleep(window)
		l1, c1 := countLeases()
		_, o1 := writes()
		sec := window.Seconds()
		perNode := float64(l1-l0) / sec / float64(len(l.nodes))
		cluster := float64(c1-c0) / sec
		other := (o1 - o0) / sec
		b.ReportMetric(perNode, fmt.Sprintf("liveness-writes/s/node@%d", services))
		b.ReportMetric(cluster, fmt.Sprintf("leader-writes/s@%d", services))
		b.ReportMetric(other, fmt.Sprintf("other-writes/s@%d", services))
		b.Logf("%d Services, 3 nodes, %v: liveness %.2f writes/s per node, leader Leases %.2f/s, other writes %.2f/s",
			services, window, perNode, cluster, other)
		return perNode*float64(len(l.nodes)) + cluster + other
	}
	serve := func(from, to int) {
		for i := from; i < to; i++ {
			create(b, c, lbSvc("default", fmt.Sprintf("s%d", i), ipv6, noNodePorts))
		}
		// Steady state: every Service has its address, and its owner
		// recorded (one write per Service, when it is first announced).
		waitUpTo(b, 3*time.Minute, fmt.Sprintf("%d Services with an address and an owner", to), func() bool {
			list, err := c.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, s := range list.Items {
				if len(s.Status.LoadBalancer.Ingress) > 0 && s.Annotations["lbd.io/l2-owner"] != "" {
					n++
				}
			}
			return n == to
		})
	}
	// One measurement per run, whatever -benchtime says: the Services
	// stay, so a second round would not start from 10.
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			continue
		}
		serve(0, 10)
		few := measure(10)
		serve(10, 1000)
		many := measure(1000)
		b.ReportMetric(many/few, "growth-1000/10")
	}
	b.ReportMetric(0, "ns/op")
}

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)
