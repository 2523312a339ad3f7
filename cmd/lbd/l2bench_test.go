package main

// Failover and API-write figures for L2 mode. They take minutes, so they
// run only when asked:
//
//	LBD_BENCH=1 go test -run 'TestBenchL2Failover|TestBenchAPIWrites' -v ./cmd/lbd
//
// They print figures and assert nothing about speed.

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

func needBench(t *testing.T) {
	if os.Getenv("LBD_BENCH") == "" {
		t.Skip("a benchmark that takes minutes: set LBD_BENCH=1")
	}
}

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

// TestBenchL2Failover measures the traffic gap at a client for three ways
// an owner goes away, with default timings: its node crashes (lbd and the
// node's service killed with SIGKILL, the kernel still up, so connections
// to it are refused until the client's neighbour entry moves), its cable
// is pulled, and lbd is stopped with SIGTERM (graceful).
func TestBenchL2Failover(t *testing.T) {
	needBench(t)
	runs := 10
	if n := os.Getenv("LBD_BENCH_RUNS"); n != "" {
		fmt.Sscan(n, &runs)
	}
	l := newL2Lab(t, "")
	const web = "192.0.2.200"
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", web)
	target := web + ":80"

	kinds := []struct {
		name    string
		fail    func(o *labNode)
		recover func(o *labNode)
	}{
		{"crash (kill -9)", func(o *labNode) {
			o.standIn.Process.Kill()
			o.standIn.Wait()
			l.kill(o, syscall.SIGKILL)
		}, func(o *labNode) {
			l.startStandIn(o)
			l.start(o)
		}},
		{"cable pull", func(o *labNode) { l.lab.Unplug(o.host) }, func(o *labNode) {
			l.lab.Plug(o.host)
			waitFor(t, o.name+" to see the cluster again", func() bool {
				st := o.d.status(t)
				return strings.HasPrefix(st.Agent, "announcing") && !strings.Contains(st.Agent, "not answering")
			})
		}},
		{"graceful stop (SIGTERM)", func(o *labNode) { l.kill(o, syscall.SIGTERM) }, func(o *labNode) { l.start(o) }},
	}
	for _, k := range kinds {
		var gaps []time.Duration
		var failures []int
		for i := 0; i < runs; i++ {
			o := l.owner(web)
			if _, err := l.get(web, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			p := startProbe(l.client, target)
			time.Sleep(300 * time.Millisecond)
			k.fail(o)
			n := l.newOwner(web, o)
			waitFor(t, "the client to move to "+n.name, func() bool { return l.neighMAC(web) == n.host.MAC })
			time.Sleep(1500 * time.Millisecond) // let late attempts finish
			gap, failed := p.finish()
			gaps, failures = append(gaps, gap), append(failures, failed)
			t.Logf("%s run %d: %s → %s, longest gap %v, %d failed connections", k.name, i+1, o.name, n.name, gap.Round(time.Millisecond), failed)
			k.recover(o)
			waitFor(t, "every node planning", func() bool {
				for _, x := range l.nodes {
					if !strings.HasPrefix(x.d.status(t).Agent, "announcing") {
						return false
					}
				}
				return true
			})
		}
		fmt.Printf("L2 failover, %s, %d runs: longest gap %v, p50 %v, p99 %v; failed connections per run: %v\n",
			k.name, runs, slices.Max(gaps).Round(time.Millisecond), percentile(gaps, 0.5).Round(time.Millisecond),
			percentile(gaps, 0.99).Round(time.Millisecond), failures)
	}
}

// TestBenchAPIWrites counts the API server's write requests (POST, PUT,
// PATCH, DELETE, by resource) in steady state with three lbd nodes and 10,
// then 1000 Services: the agent adds none, so the rate must not grow.
func TestBenchAPIWrites(t *testing.T) {
	needBench(t)
	l := newL2Lab(t, "", labPoolV4, "2001:db8:1::/64")
	c := l.kc.Client
	ctx := context.Background()
	ipv6 := func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }
	writes := func() map[string]float64 {
		raw, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for line := range strings.SplitSeq(string(raw), "\n") {
			if !strings.HasPrefix(line, "apiserver_request_total{") {
				continue
			}
			m := labelRE.FindAllStringSubmatch(line, -1)
			lab := map[string]string{}
			for _, kv := range m {
				lab[kv[1]] = kv[2]
			}
			switch lab["verb"] {
			case "POST", "PUT", "PATCH", "DELETE":
			default:
				continue
			}
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			out[lab["resource"]] += v
		}
		return out
	}
	measure := func(services int) {
		time.Sleep(3 * time.Second)
		before := writes()
		const window = 20 * time.Second
		time.Sleep(window)
		after := writes()
		var total float64
		var parts []string
		for r, v := range after {
			if d := v - before[r]; d > 0 {
				total += d
				parts = append(parts, fmt.Sprintf("%s %.2f/s", r, d/window.Seconds()))
			}
		}
		slices.Sort(parts)
		fmt.Printf("API writes with %d Services, 3 lbd nodes: %.2f/s in all, %.2f/s per node (%s)\n",
			services, total/window.Seconds(), total/window.Seconds()/3, strings.Join(parts, ", "))
	}
	create10 := func(from, to int) {
		for i := from; i < to; i++ {
			create(t, c, lbSvc("default", fmt.Sprintf("s%d", i), ipv6, noNodePorts))
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			list, err := c.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, s := range list.Items {
				if len(s.Status.LoadBalancer.Ingress) > 0 {
					n++
				}
			}
			if n == to {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d Services have an address", n, to)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	create10(0, 10)
	measure(10)
	create10(10, 1000)
	measure(1000)
}

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)
