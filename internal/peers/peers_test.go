package peers

// The detector between real processes on a real segment (internal/netlab):
// each lab host runs this test binary as a helper that starts a Detector,
// joins the others and prints its alive set on every change. memberlist
// dials TCP from its own goroutines, so one process per namespace is the
// honest setup (a socket is made in the namespace of the thread that
// makes it).

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

const helperEnv = "LBD_PEERS_HELPER" // name,addr,keyhex,name=ip,name=ip...

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helper(spec))
	}
	os.Exit(m.Run())
}

// view is one line of a helper's output: its alive set at a time.
type view struct {
	At    time.Time `json:"at"`
	Alive []string  `json:"alive"`
	Gone  []string  `json:"gone"`
}

func helper(spec string) int {
	f := strings.Split(spec, ",")
	key, _ := hex.DecodeString(f[2])
	d, err := Start(Config{Node: f[0], Addr: netip.MustParseAddr(f[1]), Port: 7946, Key: key,
		Meta: []byte("meta-" + f[0]), Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var seeds []Member
	for _, s := range f[3:] {
		name, ip, _ := strings.Cut(s, "=")
		seeds = append(seeds, Member{Name: name, Addr: netip.AddrPortFrom(netip.MustParseAddr(ip), 7946)})
	}
	go func() {
		// Keep trying: the others may not be up yet (or refuse us).
		for len(d.Alive()) < 2 {
			if _, err := d.Join(seeds); err != nil {
				fmt.Fprintln(os.Stderr, "join:", err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	enc := json.NewEncoder(os.Stdout)
	print := func() {
		var names []string
		for n, m := range d.Alive() {
			if string(m.Meta) != "meta-"+n {
				names = append(names, n+"?bad-meta")
				continue
			}
			names = append(names, n)
		}
		sort.Strings(names)
		enc.Encode(view{At: time.Now(), Alive: names, Gone: d.Gone()})
	}
	print()
	for {
		select {
		case <-d.Changed():
			print()
		case <-sig:
			d.Leave(time.Second)
			return 0
		}
	}
}

// peer is a helper process in a lab host.
type peer struct {
	name, ip string
	host     *netlab.Host
	cmd      *exec.Cmd
	done     chan struct{}

	mu    sync.Mutex
	views []view
	log   strings.Builder
}

type peerLab struct {
	t     testing.TB
	lab   *netlab.Lab
	key   string
	peers []*peer
}

func newPeerLab(t testing.TB, names ...string) *peerLab {
	netlab.Need(t)
	l := &peerLab{t: t, lab: netlab.New(t), key: strings.Repeat("0123456789abcdef", 2)}
	for i, n := range names {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		l.peers = append(l.peers, &peer{name: n, ip: ip, host: l.lab.AddHost(n, ip+"/24")})
	}
	return l
}

func (l *peerLab) peer(name string) *peer {
	for _, p := range l.peers {
		if p.name == name {
			return p
		}
	}
	l.t.Fatalf("no peer %s", name)
	return nil
}

// start runs p's helper with key (hex), seeded with every other peer.
func (l *peerLab) start(p *peer, key string) {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	spec := []string{p.name, p.ip, key}
	for _, o := range l.peers {
		if o != p {
			spec = append(spec, o.name+"="+o.ip)
		}
	}
	cmd := p.host.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(spec, ","))
	out, _ := cmd.StdoutPipe()
	errPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	p.mu.Lock()
	p.cmd, p.done, p.views = cmd, make(chan struct{}), nil
	p.mu.Unlock()
	done := p.done
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var v view
			if json.Unmarshal(sc.Bytes(), &v) == nil {
				p.mu.Lock()
				p.views = append(p.views, v)
				p.mu.Unlock()
			}
		}
	})
	wg.Go(func() {
		b, _ := io.ReadAll(errPipe)
		p.mu.Lock()
		p.log.Write(b)
		p.mu.Unlock()
	})
	go func() { wg.Wait(); cmd.Wait(); close(done) }()
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if l.t.Failed() {
			p.mu.Lock()
			l.t.Logf("%s's log:\n%s", p.name, p.log.String())
			p.mu.Unlock()
		}
	})
}

// stop ends p's helper with sig and waits.
func (l *peerLab) stop(p *peer, sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		l.t.Fatalf("%s did not exit after %v", p.name, sig)
	}
}

// alive is p's latest view.
func (p *peer) alive() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.views) == 0 {
		return nil
	}
	return p.views[len(p.views)-1].Alive
}

// gone is p's latest list of members that died.
func (p *peer) gone() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.views) == 0 {
		return nil
	}
	return p.views[len(p.views)-1].Gone
}

// seenAt is when p's view first became want after since (zero if not yet).
func (p *peer) seenAt(want []string, since time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range p.views {
		if !v.At.Before(since) && slices.Equal(v.Alive, want) {
			return v.At
		}
	}
	return time.Time{}
}

// waitViews waits until each of ps sees exactly want.
func (l *peerLab) waitViews(d time.Duration, want []string, ps ...*peer) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, p := range ps {
			ok = ok && slices.Equal(p.alive(), want)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var got []string
			for _, p := range ps {
				got = append(got, fmt.Sprintf("%s sees %v", p.name, p.alive()))
			}
			l.t.Fatalf("after %v want %v; %s", d, want, strings.Join(got, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDetector(t *testing.T) {
	l := newPeerLab(t, "a", "b", "c", "intruder")
	a, b, c, x := l.peer("a"), l.peer("b"), l.peer("c"), l.peer("intruder")
	for _, p := range []*peer{a, b, c} {
		l.start(p, l.key)
	}
	all := []string{"a", "b", "c"}
	l.waitViews(15*time.Second, all, a, b, c)

	t.Run("a host without the key cannot join or fake a member", func(t *testing.T) {
		l.start(x, strings.Repeat("fedcba9876543210", 2))
		time.Sleep(3 * time.Second)
		l.waitViews(time.Second, all, a, b, c)
		if got := x.alive(); !slices.Equal(got, []string{"intruder"}) {
			t.Errorf("the intruder sees %v, want only itself", got)
		}
		l.stop(x, syscall.SIGKILL)
	})

	t.Run("kill -9: the others drop it, and take it back when it returns", func(t *testing.T) {
		t0 := time.Now()
		l.stop(c, syscall.SIGKILL)
		l.waitViews(10*time.Second, []string{"a", "b"}, a, b)
		t.Logf("dead node dropped by a after %v, by b after %v",
			a.seenAt([]string{"a", "b"}, t0).Sub(t0), b.seenAt([]string{"a", "b"}, t0).Sub(t0))
		for _, p := range []*peer{a, b} {
			if got := p.gone(); !slices.Equal(got, []string{"c"}) {
				t.Errorf("%s lists %v as gone, want c (it died)", p.name, got)
			}
		}
		l.start(c, l.key)
		l.waitViews(10*time.Second, all, a, b, c)
		for _, p := range []*peer{a, b} {
			if got := p.gone(); len(got) != 0 {
				t.Errorf("%s lists %v as gone after c returned", p.name, got)
			}
		}
	})

	t.Run("cable pulled: the others drop it; plugged back: it returns", func(t *testing.T) {
		l.lab.Unplug(b.host)
		l.waitViews(10*time.Second, []string{"a", "c"}, a, c)
		l.lab.Plug(b.host)
		l.waitViews(15*time.Second, all, a, b, c)
	})

	t.Run("leave: the others drop it without suspecting it", func(t *testing.T) {
		l.stop(a, syscall.SIGTERM)
		l.waitViews(2*time.Second, []string{"b", "c"}, b, c)
		for _, p := range []*peer{b, c} {
			if got := p.gone(); slices.Contains(got, "a") {
				t.Errorf("%s lists a as gone (%v); it said it leaves", p.name, got)
			}
		}
	})
}

func TestStartRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no name":   {Addr: netip.MustParseAddr("127.0.0.1"), Key: make([]byte, 16)},
		"no addr":   {Node: "a", Key: make([]byte, 16)},
		"short key": {Node: "a", Addr: netip.MustParseAddr("127.0.0.1"), Key: make([]byte, 15)},
		"big meta":  {Node: "a", Addr: netip.MustParseAddr("127.0.0.1"), Key: make([]byte, 16), Meta: make([]byte, MetaLimit+1)},
	} {
		if d, err := Start(cfg); err == nil {
			d.Close()
			t.Errorf("%s: Start accepted %+v", name, cfg)
		}
	}
}

// BenchmarkPeersDeadNode: from kill -9 of one of three nodes to both
// others dropping it (median and longest over b.N deaths).
func BenchmarkPeersDeadNode(b *testing.B) {
	l := newPeerLab(b, "a", "b", "c")
	a, bb, c := l.peer("a"), l.peer("b"), l.peer("c")
	for _, p := range l.peers {
		l.start(p, l.key)
	}
	all := []string{"a", "b", "c"}
	l.waitViews(15*time.Second, all, a, bb, c)
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		time.Sleep(time.Second)
		t0 := time.Now()
		l.stop(c, syscall.SIGKILL)
		l.waitViews(10*time.Second, []string{"a", "b"}, a, bb)
		took = append(took, max(a.seenAt([]string{"a", "b"}, t0).Sub(t0), bb.seenAt([]string{"a", "b"}, t0).Sub(t0)))
		l.start(c, l.key)
		l.waitViews(10*time.Second, all, a, bb, c)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
}
