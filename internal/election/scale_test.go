package election_test

// What today's liveness design costs as the cluster grows: many light
// agents against one real kube-apiserver, each what lbd runs per node for
// liveness (election.Liveness renewing its Lease every 500 ms, and
// watch.Cluster's informers: Services, Nodes, EndpointSlices and the
// liveness Leases, whose every renewal reaches every node). Each agent has
// its own client and connections, as a node would.
//
//	go test ./internal/election -run '^$' -bench LivenessScale -benchtime 1x -timeout 30m
//	LBD_BENCH_NODES=100,500 go test ... (default 100)

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/peers"
	"github.com/lbdproject/lbd/internal/watch"
)

// scaleAgent is one node's liveness: its Lease renewer and informers,
// and with peers its detector.
type scaleAgent struct {
	name    string
	cluster *watch.Cluster
	events  atomic.Int64 // liveness Lease events received
	det     *peers.Detector

	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

// dial opens the agent's connections, which powerOff cuts.
func (a *scaleAgent) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return nil, errors.New("powered off")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		a.conns = append(a.conns, c)
	}
	return c, err
}

// powerOff cuts the agent from the API at once, as a crash would: no
// Lease deletion, no goodbye.
func (a *scaleAgent) powerOff() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dead = true
	for _, c := range a.conns {
		c.Close()
	}
	if a.det != nil {
		a.det.Close()
	}
}

func BenchmarkLivenessScale(b *testing.B) {
	for _, n := range benchNodes(b) {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				livenessScale(b, n, false)
			}
		})
	}
}

// BenchmarkPeersScale is BenchmarkLivenessScale with the design of a
// peers section: each agent also runs the peer detector (on 127.0.0.1,
// a port of its own, the default timings), its Lease is a heartbeat
// renewed every 15 s that no agent watches (a node in a quorum of its
// peers needs none), and a node is dead for the others when their
// detector drops it. LBD_BENCH_DETECTORS=0 leaves the detectors out, to
// measure what the API sees at a size whose detectors one 2-core machine
// cannot run together (past about 200): alive is then a heartbeat not
// expired, and no death is timed.
//
//	LBD_BENCH_NODES=100,200 go test ./internal/election -run '^$' -bench PeersScale -benchtime 1x -timeout 30m
//	LBD_BENCH_DETECTORS=0 LBD_BENCH_NODES=500 go test ...
//
// LBD_BENCH_PEER_NODES, when set, is used instead of LBD_BENCH_NODES:
// scripts/bench.sh runs 50 agents, since 100 detectors at 150 ms with the
// API server on one 2-core CI machine did not always all see each other
// (88-99.99 % measured on 5 December 2026; 100 % on the machine of the
// documented figures).
func BenchmarkPeersScale(b *testing.B) {
	for _, n := range benchNodes(b, "LBD_BENCH_PEER_NODES") {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				livenessScale(b, n, true)
			}
		})
	}
}

// benchNodes is LBD_BENCH_NODES (comma-separated node counts), 100 by
// default; the first of first (an environment variable's name) that is
// set comes before it.
func benchNodes(b *testing.B, first ...string) []int {
	s := os.Getenv("LBD_BENCH_NODES")
	for _, name := range first {
		if v := os.Getenv(name); v != "" {
			s = v
			break
		}
	}
	if s == "" {
		return []int{100}
	}
	var counts []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			b.Fatalf("LBD_BENCH_NODES: %q", s)
		}
		counts = append(counts, n)
	}
	return counts
}

func livenessScale(b *testing.B, n int, withPeers bool) {
	detectors := withPeers && os.Getenv("LBD_BENCH_DETECTORS") != "0"
	// The powered-off agent's reflectors would log every retry.
	klog.SetLogger(logr.Discard())
	kc := kubetest.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := kc.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lbd"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	agents := make([]*scaleAgent, n)
	for i := range agents {
		a := &scaleAgent{name: fmt.Sprintf("node-%04d", i)}
		agents[i] = a
		cfg := rest.CopyConfig(kc.RESTConfig)
		cfg.Dial = a.dial // also keeps client-go from sharing one transport
		cfg.QPS, cfg.Burst = 20, 40
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		a.cluster = watch.NewCluster(cs, "", a.name, quiet)
		if !withPeers {
			// With peers a node in a quorum watches no heartbeat Lease.
			a.cluster.WatchNodeLeases("lbd")
			a.cluster.OnLeaseChange(func() { a.events.Add(1) })
		}
		go a.cluster.Start(ctx)
		lv := &election.Liveness{Client: cs, Namespace: "lbd", Node: a.name, Duration: 2 * time.Second,
			Interval: 500 * time.Millisecond, Log: quiet,
			Annotations: func() map[string]string {
				return map[string]string{watch.AnnotationInterfaces: "eth0", watch.AnnotationMACs: "02:00:00:00:00:01"}
			}}
		if detectors {
			meta, err := peers.NodeMeta{Since: time.Now(), Interfaces: []string{"*"}, MACs: []net.HardwareAddr{{2, 0, 0, 0, 0, 1}}}.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			a.det, err = peers.Start(peers.Config{Node: a.name, Addr: netip.MustParseAddr("127.0.0.1"), Key: make([]byte, 32), Meta: meta})
			if err != nil {
				b.Fatal(err)
			}
			defer a.det.Close()
			if i > 0 {
				seed := agents[i-1-i%min(i, 10)]
				// A loaded machine (hundreds of agents starting) may time a
				// join out; lbd joins again every 2 s, and so does this.
				seeds := []peers.Member{{Name: seed.name, Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(seed.det.Port()))}}
				for try := 1; ; try++ {
					_, err := a.det.Join(seeds)
					if err == nil {
						break
					}
					if try == 5 {
						b.Fatalf("%s joining %s: %v", a.name, seed.name, err)
					}
					time.Sleep(2 * time.Second)
				}
			}
		}
		if withPeers {
			lv.Interval, lv.Duration = 15*time.Second, 45*time.Second
			lv.Annotations = func() map[string]string {
				return map[string]string{watch.AnnotationInterfaces: "eth0", watch.AnnotationMACs: "02:00:00:00:00:01",
					watch.AnnotationPeerState: "quorum", watch.AnnotationPeers: ""}
			}
		}
		go lv.Run(ctx)
	}
	alive := func(a *scaleAgent, now time.Time) map[string]bool {
		m := map[string]bool{}
		if detectors {
			for name := range a.det.Alive() {
				m[name] = true
			}
			return m
		}
		for _, ls := range a.cluster.NodeLeases() {
			if now.Before(ls.Expires()) {
				m[ls.Node] = true
			}
		}
		return m
	}
	// Wait until every agent sees every node alive; past a minute, the
	// API cannot keep up (that is a figure too: seen-alive-%).
	seenAlive := func() float64 {
		if withPeers && !detectors {
			// No agent looks at the others: every heartbeat Lease
			// written is what there is to see.
			ls, err := kc.Client.CoordinationV1().Leases("lbd").List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0
			}
			return 100 * float64(len(ls.Items)) / float64(n)
		}
		now, sum := time.Now(), 0
		for _, a := range agents {
			sum += len(alive(a, now))
		}
		return 100 * float64(sum) / float64(n*n)
	}
	converged := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if seenAlive() == 100 {
			converged = true
			break
		}
	}
	time.Sleep(2 * time.Second) // past the start-up burst

	window := 10 * time.Second
	if withPeers {
		window = 30 * time.Second // two heartbeats per node
	}
	w0, t0, cpu0, ev0 := leaseWrites(b, kc), time.Now(), cpuSeconds(b, kc.APIServerPID()), totalEvents(agents)
	time.Sleep(window)
	w1, t1, cpu1, ev1 := leaseWrites(b, kc), time.Now(), cpuSeconds(b, kc.APIServerPID()), totalEvents(agents)
	secs := t1.Sub(t0).Seconds()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	b.ReportMetric((w1-w0)/secs, "writes/s")
	b.ReportMetric((w1-w0)/secs/float64(n), "writes/s/node")
	b.ReportMetric(float64(ev1-ev0)/secs, "watch-events/s")
	b.ReportMetric((cpu1-cpu0)/secs*60, "apiserver-cpu-s/min")
	b.ReportMetric(float64(ms.HeapInuse)/float64(n)/1024, "heap-KiB/node")
	b.ReportMetric(seenAlive(), "seen-alive-%")
	if withPeers && !detectors {
		return
	}
	if !converged {
		b.Logf("%d nodes never all saw each other alive within a minute: the API server (Leases) or the detectors sharing this machine fall behind", n)
		// A hundred detectors at 150 ms on two cores sometimes leave a
		// pair apart (seen in CI: 99.99 %); the death is still timed,
		// over the agents that see the victim. Far from converged, it
		// means nothing.
		if seenAlive() < 99 {
			return
		}
	}

	// A node dies; when does every other node see it dead?
	victim := agents[0]
	agreed := map[string]time.Duration{}
	for _, a := range agents[1:] {
		if !alive(a, time.Now())[victim.name] {
			agreed[a.name] = 0 // never saw it alive (not converged)
		}
	}
	start := time.Now()
	victim.powerOff()
	for len(agreed) < n-1 {
		now := time.Now()
		if now.Sub(start) > 2*time.Minute {
			b.Fatalf("after 2 minutes only %d of %d nodes see %s dead", len(agreed), n-1, victim.name)
		}
		for _, a := range agents[1:] {
			if _, ok := agreed[a.name]; !ok && !alive(a, now)[victim.name] {
				agreed[a.name] = now.Sub(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var last time.Duration
	for _, d := range agreed {
		last = max(last, d)
	}

	b.ReportMetric(last.Seconds(), "all-agree-dead-s")
}

func totalEvents(as []*scaleAgent) int64 {
	var t int64
	for _, a := range as {
		t += a.events.Load()
	}
	return t
}

// leaseWrites is the API server's count of Lease writes so far.
func leaseWrites(b *testing.B, kc *kubetest.Cluster) float64 {
	raw, err := kc.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="leases"`) {
			continue
		}
		write := false
		for _, v := range []string{`verb="POST"`, `verb="PUT"`, `verb="PATCH"`, `verb="DELETE"`} {
			write = write || strings.Contains(line, v)
		}
		if !write {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// cpuSeconds is the user+system CPU time of process pid.
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command may hold spaces; the fields after its ")" are fixed.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
