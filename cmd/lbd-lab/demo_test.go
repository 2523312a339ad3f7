package main

// The README's first command, run as a user runs it: ./scripts/demo.sh
// as root, its results checked step by step (not its wording); then a
// second run over the first lab, interrupted as by Ctrl-C; then down.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/demo"
	"github.com/lbdproject/lbd/internal/netlab"
)

func TestDemoScript(t *testing.T) {
	netlab.Need(t)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("lbd-demo-test-%d", os.Getpid()))
	script := func(args ...string) *exec.Cmd {
		cmd := exec.Command("../../scripts/demo.sh", args...)
		cmd.Env = append(os.Environ(), "LBD_DEMO_DIR="+dir)
		// Its own process group, as a shell gives a foreground job, so
		// that a Ctrl-C can be sent to the group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	down := func() {
		if out, err := script("down").CombinedOutput(); err != nil {
			t.Errorf("demo.sh down: %v\n%s", err, out)
		}
	}
	t.Cleanup(down)
	if labNamespaces(t) != nil {
		t.Fatalf("namespaces %s-* exist before the test: %v", demo.Prefix, labNamespaces(t))
	}

	t.Run("story", func(t *testing.T) {
		out, err := runScript(t, script(), nil)
		if err != nil {
			t.Fatalf("demo.sh: %v\n%s", err, out)
		}
		var res demo.Results
		b, err := os.ReadFile(filepath.Join(dir, "results.json"))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		checkResults(t, res)
		t.Logf("demo.sh output:\n%s", out)
		if t.Failed() {
			logFailedRequests(t, dir, res)
		}

		// The lab stays up: the client still reaches the address.
		if got, err := exec.Command("ip", "netns", "exec", demo.Prefix+"-client",
			"curl", "-s", "-m", "5", "http://"+res.Web.Address+"/").CombinedOutput(); err != nil || strings.TrimSpace(string(got)) == "" {
			t.Errorf("after the story, curl from the client: %v %q", err, got)
		}
	})

	t.Run("again, interrupted", func(t *testing.T) {
		// Over the lab of the first run, which it must take down first;
		// interrupted (Ctrl-C: SIGINT to the foreground process group)
		// once its own lab is being built.
		sent := false
		out, err := runScript(t, script(), func(line string, pgid int) {
			if !sent && strings.Contains(line, "== 1.") {
				syscall.Kill(-pgid, syscall.SIGINT)
				sent = true
			}
		})
		if !sent {
			t.Fatalf("the second run never reached step 1: %v\n%s", err, out)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("interrupted demo.sh: %v, want exit 130\n%s", err, out)
		}
		if !strings.Contains(out, "taking down the lab of an earlier run") {
			t.Errorf("the second run did not take the first lab down:\n%s", out)
		}
		if ns := labNamespaces(t); ns != nil {
			t.Errorf("namespaces left after Ctrl-C: %v", ns)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left after Ctrl-C: %v", dir, err)
		}
		if pids, _ := exec.Command("pgrep", "-f", "lbd-lab demo -dir "+dir).Output(); len(pids) > 0 {
			t.Errorf("lbd-lab still running after Ctrl-C: %s", pids)
		}
	})

	t.Run("down with nothing up", func(t *testing.T) {
		if out, err := script("down").CombinedOutput(); err != nil {
			t.Errorf("demo.sh down with no lab: %v\n%s", err, out)
		}
	})
}

// runScript runs cmd, calling onLine (if not nil) with each line of its
// output as it comes, and returns the output once cmd has exited and
// every process that holds its output has let go of it (a process left
// behind fails the test after 10 minutes, as does a hung demo).
func runScript(t *testing.T, cmd *exec.Cmd, onLine func(line string, pgid int)) (string, error) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	pgid := cmd.Process.Pid
	hung := time.AfterFunc(10*time.Minute, func() {
		t.Errorf("demo.sh or a process it left holds its output after 10 minutes: killing its process group")
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
	defer hung.Stop()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if onLine != nil {
			onLine(sc.Text(), pgid)
		}
	}
	pr.Close()
	return out.String(), cmd.Wait()
}

// checkResults checks what each step of the story did.
func checkResults(t *testing.T, r demo.Results) {
	t.Helper()
	workers := []string{"w1", "w2", "w3"}
	inPool := func(ip, pool string) bool {
		a, err := netip.ParseAddr(ip)
		return err == nil && netip.MustParsePrefix(pool).Contains(a)
	}
	// 1. One control-plane node holds the VIP; kubectl through it works.
	if !slices.Contains([]string{"cp1", "cp2", "cp3"}, r.VIP.Holder) || !r.VIP.KubectlOK {
		t.Errorf("step 1, VIP: %+v", r.VIP)
	}
	// 2. The Service's address comes from the web pool and its owner
	// answered the client.
	if !inPool(r.Web.Address, "192.0.2.200/29") || !slices.Contains(workers, r.Web.Owner) || r.Web.ServedBy != r.Web.Owner {
		t.Errorf("step 2, web: %+v", r.Web)
	}
	// 3. Only the node with the endpoint answers the pinned address.
	if r.Ingress.Address != "192.0.2.240" || !slices.Equal(r.Ingress.Owners, []string{r.Ingress.Endpoint}) ||
		r.Ingress.ServedBy != r.Ingress.Endpoint || !slices.Equal(r.Ingress.OthersSaid, []string{"no_local_endpoints", "no_local_endpoints"}) {
		t.Errorf("step 3, ingress: %+v", r.Ingress)
	}
	// 4. Another node took the address over, and kept it when the old
	// owner came back. The bound only tells a failover from none.
	f := r.L2Failover
	if f.From != r.Web.Owner || f.To == f.From || !slices.Contains(workers, f.To) || f.GapMS <= 0 || f.GapMS > 15000 || !f.StayedPut {
		t.Errorf("step 4, L2 failover: %+v", f)
	}
	// 5. Three next hops; the dead node's gone by BFD (not the 90 s hold
	// timer); the client behind the router was served.
	b := r.BGP
	deadIP := map[string]string{"w1": "192.0.2.21", "w2": "192.0.2.22", "w3": "192.0.2.23"}[b.Died]
	if len(b.Nexthops) != 3 || !slices.Contains(workers, b.RemoteServedBy) || deadIP == "" ||
		len(b.NexthopsAfter) != 2 || slices.Contains(b.NexthopsAfter, deadIP) || b.DropMS <= 0 || b.DropMS > 10000 {
		t.Errorf("step 5, BGP: %+v", b)
	}
	// 6. Another control-plane node holds the VIP; kubectl works.
	c := r.CPFailover
	if c.From == "" || c.To == c.From || !c.KubectlOK || c.GapMS <= 0 || c.GapMS > 15000 {
		t.Errorf("step 6, control-plane failover: %+v", c)
	}
	// 7. The drain moved the address without a failed request (a
	// request in flight at the instant of the MAC switch may be reset:
	// its connection lived on the old node).
	d := r.Drain
	if !inPool(d.Address, "192.0.2.208/29") || d.To == d.Node || !slices.Contains(workers, d.To) || d.Failed != 0 || d.Requests < 50 {
		t.Errorf("step 7, drain: %+v", d)
	}
}

// logFailedRequests prints what the lab logged of the requests that
// failed (logs/lab.log) and the lbd logs of the nodes the drain moved an
// address between: what a failed step needs to be understood.
func logFailedRequests(t *testing.T, dir string, res demo.Results) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "logs", "lab.log"))
	if err != nil {
		t.Logf("lab log: %v", err)
		return
	}
	var lines []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "failed request") {
			lines = append(lines, line)
		}
	}
	t.Logf("failed requests (logs/lab.log):\n%s", strings.Join(lines, ""))
	for _, n := range []string{res.Drain.Node, res.Drain.To} {
		if n == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "logs", n+".log"))
		if err != nil {
			t.Logf("%s's log: %v", n, err)
			continue
		}
		all := strings.Split(string(b), "\n")
		t.Logf("%s's log, last 80 lines:\n%s", n, strings.Join(all[max(0, len(all)-80):], "\n"))
	}
}

// labNamespaces lists the namespaces of a demo lab.
func labNamespaces(t *testing.T) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], demo.Prefix+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}
