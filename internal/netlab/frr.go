package netlab

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FRR is zebra and bgpd from Debian's frr package running by hand in a
// host (the package starts nothing in a namespace), with their own
// sockets in a private directory.
type FRR struct {
	t testing.TB
	// Dir holds the configuration, logs and the vty sockets.
	Dir string
}

// StartFRR runs zebra and bgpd in h with bgpd.conf text conf (the text
// %DIR% is replaced by FRR.Dir), and waits until both answer vtysh. It
// skips the test when FRR is not installed. Both are killed when the
// test ends; on failure their logs are logged.
func StartFRR(t testing.TB, h *Host, conf string) *FRR {
	t.Helper()
	return startFRR(t, h, conf, "")
}

// StartFRRWithBFD is StartFRR with bfdd too, configured by bfdConf (a
// `bfd` block with profiles); bgpd's neighbors then use `bfd` and `bfd
// profile NAME`.
func StartFRRWithBFD(t testing.TB, h *Host, conf, bfdConf string) *FRR {
	t.Helper()
	return startFRR(t, h, conf, bfdConf)
}

func startFRR(t testing.TB, h *Host, conf, bfdConf string) *FRR {
	t.Helper()
	daemons := []string{"zebra", "bgpd"}
	if bfdConf != "" {
		daemons = []string{"zebra", "bfdd", "bgpd"}
	}
	for _, d := range daemons {
		bin := "/usr/lib/frr/" + d
		if _, err := os.Stat(bin); err != nil {
			t.Skip("FRR is not installed (apt-get install frr)")
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("vtysh is not installed (apt-get install frr)")
	}
	u, err := user.Lookup("frr")
	if err != nil {
		t.Skip("no frr user (apt-get install frr)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Not t.TempDir: the frr user must reach the directory.
	dir, err := os.MkdirTemp("", "lbd-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.Chown(dir, uid, gid)
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	write("zebra.conf", "hostname tor\nlog file "+dir+"/zebra.log\n")
	write("bgpd.conf", strings.ReplaceAll(conf, "%DIR%", dir))
	if bfdConf != "" {
		write("bfdd.conf", strings.ReplaceAll(bfdConf, "%DIR%", dir))
	}
	f := &FRR{t: t, Dir: dir}
	for _, d := range daemons {
		cmd := h.Command("/usr/lib/frr/"+d, "-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0", "-u", "frr", "-g", "frr")
		out, _ := os.Create(filepath.Join(dir, d+".out"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			out.Close()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, d+".log"))
				o, _ := os.ReadFile(filepath.Join(dir, d+".out"))
				t.Logf("%s output:\n%s\n%s", d, o, b)
			}
		})
		// bgpd needs zebra's socket: one at a time.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := f.Vtysh(d, "show version"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("netlab: FRR's %s did not come up", d)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return f
}

// Vtysh runs one vtysh command against daemon ("" for all).
func (f *FRR) Vtysh(daemon, cmd string) (string, error) {
	args := []string{"--vty_socket", f.Dir, "-c", cmd}
	if daemon != "" {
		args = append([]string{"-d", daemon}, args...)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	return string(out), err
}

// Configure runs lines in daemon's configuration mode.
func (f *FRR) Configure(daemon string, lines ...string) {
	f.t.Helper()
	args := []string{"--vty_socket", f.Dir, "-d", daemon, "-c", "configure terminal"}
	for _, l := range lines {
		args = append(args, "-c", l)
	}
	if out, err := exec.Command("vtysh", args...).CombinedOutput(); err != nil || strings.Contains(string(out), "%") {
		f.t.Fatalf("vtysh %q: %v\n%s", lines, err, out)
	}
}

// BFDPacketsIn is how many BFD Control packets bfdd has received from
// peer.
func (f *FRR) BFDPacketsIn(peer string) int {
	f.t.Helper()
	out, err := f.Vtysh("bfdd", "show bfd peer "+peer+" counters json")
	if err != nil {
		f.t.Fatalf("show bfd peer counters: %v\n%s", err, out)
	}
	var c struct {
		In int `json:"control-packet-input"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		f.t.Fatalf("show bfd peer %s counters json: %v\n%s", peer, err, out)
	}
	return c.In
}

// Established returns the neighbours FRR has Established, with the
// address family of the session ("ipv4Unicast", "ipv6Unicast").
func (f *FRR) Established() map[string]string {
	f.t.Helper()
	out, err := f.Vtysh("bgpd", "show bgp summary json")
	if err != nil {
		f.t.Fatalf("show bgp summary: %v\n%s", err, out)
	}
	var sum map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		f.t.Fatalf("show bgp summary json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for fam, s := range sum {
		for addr, p := range s.Peers {
			if p.State == "Established" {
				got[addr] = fam
			}
		}
	}
	return got
}

// WaitEstablished waits until FRR has sessions with every address in
// addrs Established, and returns how long that took.
func (f *FRR) WaitEstablished(d time.Duration, addrs ...string) time.Duration {
	f.t.Helper()
	start := time.Now()
	for {
		got := f.Established()
		ok := true
		for _, a := range addrs {
			if _, up := got[a]; !up {
				ok = false
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			f.t.Fatalf("FRR has Established %v after %v, want %v", got, d, addrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RouteNexthops returns the active next hops of FRR's selected BGP route
// for dst, from zebra's RIB.
func (f *FRR) RouteNexthops(dst string) []string {
	f.t.Helper()
	cmd := "show ip route " + dst + " json"
	if strings.Contains(dst, ":") {
		cmd = "show ipv6 route " + dst + " json"
	}
	out, err := f.Vtysh("zebra", cmd)
	if err != nil {
		f.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	var rib map[string][]struct {
		Protocol string `json:"protocol"`
		Selected bool   `json:"selected"`
		Nexthops []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &rib); err != nil {
		f.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	var hops []string
	for _, rs := range rib {
		for _, r := range rs {
			if r.Protocol != "bgp" || !r.Selected {
				continue
			}
			for _, n := range r.Nexthops {
				if n.Active {
					hops = append(hops, n.IP)
				}
			}
		}
	}
	return hops
}

// Nexthops returns h's kernel next hops for dst (ip route show dst): one
// per ECMP path.
func (h *Host) Nexthops(dst string) []string {
	h.lab.t.Helper()
	args := []string{"ip", "-j", "route", "show", dst}
	if strings.Contains(dst, ":") {
		args = []string{"ip", "-6", "-j", "route", "show", dst}
	}
	out, err := h.Run(args...)
	if err != nil {
		h.lab.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		h.lab.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	var hops []string
	for _, r := range routes {
		if r.Gateway != "" {
			hops = append(hops, r.Gateway)
		}
		for _, n := range r.Nexthops {
			hops = append(hops, n.Gateway)
		}
	}
	return hops
}

// BFDPeer is one of bfdd's sessions, from `show bfd peers json`.
type BFDPeer struct {
	Peer   string `json:"peer"`
	Status string `json:"status"` // up, down, init, shutdown
	// Uptime is in seconds, while up; RemoteID is the peer's
	// discriminator.
	Uptime   int    `json:"uptime"`
	RemoteID uint32 `json:"remote-id"`
	// Intervals in milliseconds: what bfdd uses (transmit, receive) and
	// what the peer advertised.
	TransmitInterval       int    `json:"transmit-interval"`
	ReceiveInterval        int    `json:"receive-interval"`
	RemoteTransmitInterval int    `json:"remote-transmit-interval"`
	RemoteReceiveInterval  int    `json:"remote-receive-interval"`
	RemoteDetectMultiplier int    `json:"remote-detect-multiplier"`
	Diagnostic             string `json:"diagnostic"`
	RemoteDiagnostic       string `json:"remote-diagnostic"`
}

// BFDPeers returns bfdd's sessions by peer address.
func (f *FRR) BFDPeers() map[string]BFDPeer {
	f.t.Helper()
	out, err := f.Vtysh("bfdd", "show bfd peers json")
	if err != nil {
		f.t.Fatalf("show bfd peers: %v\n%s", err, out)
	}
	var list []BFDPeer
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		f.t.Fatalf("show bfd peers json: %v\n%s", err, out)
	}
	got := map[string]BFDPeer{}
	for _, p := range list {
		got[p.Peer] = p
	}
	return got
}
