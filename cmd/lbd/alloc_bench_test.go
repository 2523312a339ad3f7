package main

// Allocation figures against a real kube-apiserver. Run with
//   go test ./cmd/lbd -run '^$' -bench Alloc -benchtime 1x
// They are benchmarks, not tests: they report figures and assert nothing
// about speed.

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

const benchPools = `pools:
  - name: big
    addresses: [10.128.0.0/16]
l2:
  advertisements:
    # These lbd run in the host's own namespace: an interface that does
    # not exist keeps them from ever announcing there.
    - {name: all, pools: [big], interfaces: [lbdtest0]}
`

// noNodePorts keeps a benchmark's thousands of Services within the API
// server's 2768 node ports.
func noNodePorts(s *corev1.Service) {
	f := false
	s.Spec.AllocateLoadBalancerNodePorts = &f
}

// BenchmarkAllocCreateToStatus creates 1000 Services one after another and
// reports the time from Create returning to the status carrying an
// address, as a watch sees it: p50, p99 and max.
func BenchmarkAllocCreateToStatus(b *testing.B) {
	kc := startKube(b)
	startNode(b, kc, "node-a", benchPools)
	c := kc.Client
	waitFor(b, "the allocator Lease", func() bool { return leaseHolder(b, c) == "node-a" })
	const count = 1000
	for b.Loop() {
		ns := fmt.Sprintf("bench-%d", time.Now().UnixNano())
		ensureNamespaces(b, c, ns)
		lat := measureCreateToStatus(b, c, ns, count)
		slices.Sort(lat)
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func measureCreateToStatus(b *testing.B, c kubernetes.Interface, ns string, count int) []time.Duration {
	ctx := context.Background()
	w, err := c.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	done := map[string]time.Duration{}
	finished := make(chan struct{})
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type != watch.Modified || len(s.Status.LoadBalancer.Ingress) == 0 {
				continue
			}
			now := time.Now()
			mu.Lock()
			if t0, ok := created[s.Name]; ok {
				if _, seen := done[s.Name]; !seen {
					done[s.Name] = now.Sub(t0)
				}
			}
			n := len(done)
			mu.Unlock()
			if n == count {
				close(finished)
				return
			}
		}
	}()
	for i := range count {
		name := fmt.Sprintf("s%04d", i)
		if _, err := c.CoreV1().Services(ns).Create(ctx, lbSvc(ns, name, noNodePorts), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d Services got an address", len(done), count)
	}
	out := make([]time.Duration, 0, count)
	for _, d := range done {
		out = append(out, d)
	}
	return out
}

// BenchmarkAllocScale creates 10 000 LoadBalancer Services
// (LBD_BENCH_SERVICES to change), then reports
// lbd's memory holding them over a 10 s window sampled every 250 ms: the
// highest RSS (RSS-max-MiB, what to budget) and the lowest Go heap in use
// (heap-MiB, from go_memstats_heap_alloc_bytes: the live heap just after a
// collection). Then it restarts lbd and reports the time it takes to
// resync them all (to lead again with every Service checked), with the
// number of addresses that changed; a change fails it.
func BenchmarkAllocScale(b *testing.B) {
	kc := startKube(b)
	c := kc.Client
	n := startNode(b, kc, "node-a", benchPools)
	waitFor(b, "the allocator Lease", func() bool { return leaseHolder(b, c) == "node-a" })
	count := 10000
	if s := os.Getenv("LBD_BENCH_SERVICES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("LBD_BENCH_SERVICES=%q: want a count", s)
		}
		count = n
	}
	for b.Loop() {
		ns := "scale"
		ensureNamespaces(b, c, ns)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range count {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				if _, err := c.CoreV1().Services(ns).Create(context.Background(), lbSvc(ns, fmt.Sprintf("s%05d", i), noNodePorts), metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}(i)
		}
		wg.Wait()
		waitUpTo(b, 10*time.Minute, "every Service to have an address", func() bool { return countAssigned(b, c, ns) == count })
		rssMax, heapMin := 0, math.MaxFloat64
		for range 40 {
			rssMax = max(rssMax, rssKiB(n.cmd.Process.Pid))
			if h, err := strconv.ParseFloat(scrape(b, n.http, "go_memstats_heap_alloc_bytes"), 64); err == nil {
				heapMin = min(heapMin, h)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if heapMin == math.MaxFloat64 {
			b.Fatal("no go_memstats_heap_alloc_bytes in lbd's metrics")
		}
		b.ReportMetric(float64(rssMax)/1024, "RSS-max-MiB")
		b.ReportMetric(heapMin/(1<<20), "heap-MiB")

		before := allStatus(b, c)
		if len(before) < count {
			b.Fatalf("%d addresses before the restart, want at least %d", len(before), count)
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		<-n.done
		t0 := time.Now()
		n2 := startDaemon(b, n.path, n.socket)
		waitUpTo(b, 5*time.Minute, "the restarted lbd to resync", func() bool {
			return strings.Contains(n2.logs(), "leading; rebuilding") && resynced(n2)
		})
		b.ReportMetric(time.Since(t0).Seconds(), "resync-s")
		after := allStatus(b, c)
		changed := 0
		for k, v := range before {
			if after[k] != v {
				changed++
			}
		}
		b.ReportMetric(float64(changed), "changed")
		if changed != 0 || len(after) != len(before) {
			b.Errorf("the restart changed %d of %d addresses (%d after)", changed, len(before), len(after))
		}
	}
}

// resynced reports whether the restarted lbd finished its rebuild: it logs
// a line when the rebuild is done.
func resynced(d *daemonProc) bool {
	return strings.Contains(d.logs(), "msg=rebuilt")
}

func countAssigned(b *testing.B, c kubernetes.Interface, ns string) int {
	list, err := c.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			n++
		}
	}
	return n
}

// scrape returns one sample's value from lbd's metrics at addr.
func scrape(b *testing.B, addr, name string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	return ""
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return -1
}
