package main

// Black-box tests of the built lbd binary: exit codes of lbd check, and the
// reload machinery of a running lbd driven the way users drive it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/status"
	"github.com/lbdproject/lbd/internal/testbin"
)

var lbdBin string

// raceDetector is true in a test binary built with -race (race_test.go).
var raceDetector bool

// Set by scripts/test.sh, which builds lbd once for every test process:
// the paths of an lbd built like this test binary (with -race when it
// is) and of one built without -race. Unset, each process builds its own.
const (
	envLbdRace  = "LBD_TEST_LBD_RACE"
	envLbdPlain = "LBD_TEST_LBD"
)

// plainBuild is lbd without the race detector (timingBin).
var plainBuild = &testbin.Build{Env: envLbdPlain, Pkg: ".", Name: "lbd"}

func TestMain(m *testing.M) {
	if node := os.Getenv(standInEnv); node != "" {
		serveStandIn(node) // this process is a lab node's stand-in for kube-proxy
		return
	}
	// lbdBin is built like this test binary: with -race when it has it.
	defaultBuild := plainBuild
	if raceDetector {
		defaultBuild = &testbin.Build{Env: envLbdRace, Pkg: ".", Name: "lbd", Flags: []string{"-race"}}
	}
	var err error
	if lbdBin, err = defaultBuild.Get(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	defaultBuild.Remove()
	plainBuild.Remove()
	os.Exit(code)
}

// timingBin returns lbd built without the race detector, as the
// benchmarks run it: the timing labs (timingLab) and every lab not in
// raceLabs run it. Instrumented, lbd needs several times the CPU, and a
// lab that times the peer detector's 75 ms probe timeout or BFD's 900 ms
// detection measured the starved machine instead (docs/testing.md).
func timingBin(t testing.TB) string {
	t.Helper()
	if !raceDetector {
		return lbdBin
	}
	return plainBuild.Path(t)
}

// raceLabs are the tests whose lbd daemons are built with the race
// detector (when the test binary is): one lab for each part of the daemon
// (L2 announcement and its failover and restarts, BGP, the control-plane
// VIP, the allocator, BFD with the metrics) and the short tests of
// reload, systemd notification and clean-up. The other labs run the same
// code paths again and run timingBin: an instrumented lbd needs several
// times the CPU, and a dozen labs of them kept both cores busy for
// minutes (docs/testing.md). TestRaceLabsExist keeps the list true.
var raceLabs = map[string]bool{
	"TestL2Lab":                         true,
	"TestBGPLab":                        true,
	"TestControlPlaneVIP":               true,
	"TestAllocation":                    true,
	"TestMetricsMatchRulesAndDashboard": true,
	"TestRunReload":                     true,
	"TestSymlinkSwap":                   true,
	"TestRunRefusesInvalidFile":         true,
	"TestSystemdNotify":                 true,
	"TestCleanup":                       true,
}

// labBin returns the lbd that t's daemons run: lbdBin for the tests in
// raceLabs, timingBin for the others.
func labBin(t testing.TB) string {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	if raceLabs[top] {
		return lbdBin
	}
	return timingBin(t)
}

// lbd runs the binary and returns its exit code, stdout and stderr.
func lbd(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return lbdStdin(t, "", args...)
}

// lbdStdin is lbd with stdin.
func lbdStdin(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(lbdBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lbd %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Ansible's validate passes a temporary file with an odd name.
	good := filepath.Join(dir, ".ansible_tmp_x8k2lbd.yaml")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	write(t, kubeconfig, "apiVersion: v1\n")
	write(t, good, "version: 1\nkubernetes: {kubeconfig: "+kubeconfig+"}\npools:\n  - {name: p, addresses: [192.0.2.16/28]}\nl2:\n  advertisements: [{name: a, pools: [p]}]\n")
	code, out, errOut := lbd(t, "check", "-c", good)
	if code != 0 || !strings.Contains(out, "ok: node ") || !strings.Contains(out, "1 pool (16 IPv4 addresses)") || errOut != "" {
		t.Errorf("valid file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, "version: 1\npools:\n  - {name: p, addresses: [192.0.2.20-192.0.2.10]}\nlog: {level: loud}\nl2:\n  advertisements: [{name: a, pools: [p]}]\n")
	code, out, errOut = lbd(t, "check", "--config", bad)
	if code != 1 || out != "" {
		t.Errorf("invalid file: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		bad + `:3:27: pools[0].addresses[0] "192.0.2.20-192.0.2.10": range start is after its end`,
		bad + `:4:14: log.level "loud": unknown log level`,
		bad + `: 2 problems`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	code, _, errOut = lbd(t, "check", "-c", filepath.Join(dir, "absent.yaml"))
	if code != 2 || !strings.Contains(errOut, "no such file") {
		t.Errorf("unreadable file: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := lbd(t, "check", "stray-arg"); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
}

// TestCheckWarnings: warnings are printed and exit 0, --strict makes them
// fail, --offline skips the machine's checks and says so, -o json carries
// all of it for machines.
func TestCheckWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "w.yaml")
	write(t, f, `version: 1
kubernetes: {kubeconfig: /nonexistent/kubeconfig}
pools:
  - {name: p, addresses: [192.0.2.16/28]}
bgp:
  asn: 64512
  peers:
    - {name: tor, address: 198.51.100.1, asn: 64501, hold_time: 9s, keepalive: 9s, password_file: /nonexistent/pw}
  advertisements: [{name: b, pools: [p]}]
`)
	// On this machine the password file is missing: a problem.
	if code, _, errOut := lbd(t, "check", "-c", f); code != 1 || !strings.Contains(errOut, `password_file "/nonexistent/pw": cannot be read`) {
		t.Errorf("missing password file: exit %d, %s", code, errOut)
	}
	code, out, errOut := lbd(t, "check", "--offline", "-c", f)
	if code != 0 || !strings.Contains(errOut, "keepalive \"9s\": equals hold_time") || !strings.Contains(out, "1 warning") ||
		!strings.Contains(out, "not checked (--offline): password files") {
		t.Errorf("offline: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := lbd(t, "check", "--offline", "--strict", "-c", f); code != 1 || !strings.Contains(errOut, "1 warning, which --strict counts as problems") {
		t.Errorf("strict: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = lbd(t, "check", "--offline", "-o", "json", "-c", f)
	var res struct {
		Valid    bool
		Problems []struct{ Field, Message string }
		Warnings []struct {
			Line          int
			Field, Value  string
			Message, File string
		}
		Skipped []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	if !res.Valid || len(res.Problems) != 0 || len(res.Warnings) != 1 || res.Warnings[0].Field != "bgp.peers[0].keepalive" ||
		res.Warnings[0].Line != 8 || len(res.Skipped) != 3 {
		t.Errorf("json: %+v", res)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := lbd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "lbd ") {
		t.Errorf("exit %d, %q", code, out)
	}
	code, out, _ = lbd(t, "version", "-o", "json")
	var v struct{ Version, GoVersion, OS, Arch string }
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") || v.OS != "linux" {
		t.Errorf("version -o json: exit %d, %q, %v", code, out, err)
	}
	if code, _, errOut := lbd(t, "version", "-o", "yaml"); code != 2 || !strings.Contains(errOut, "-o must be text or json") {
		t.Errorf("version -o yaml: exit %d, %q", code, errOut)
	}
}

// TestSubcommandHelp: every subcommand's --help (and -h) exits 0 with its
// usage; an unknown flag exits 2.
func TestSubcommandHelp(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"run", "check", "reload", "status", "cleanup", "import-metallb", "version"} {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := lbd(t, sub, h)
			if code != 0 || !strings.Contains(out+errOut, "Usage of lbd "+sub) && !strings.Contains(out+errOut, "Usage: lbd "+sub) {
				t.Errorf("lbd %s %s: exit %d\n%s%s", sub, h, code, out, errOut)
			}
		}
		if code, _, _ := lbd(t, sub, "--no-such-flag"); code != 2 {
			t.Errorf("lbd %s --no-such-flag: exit %d, want 2", sub, code)
		}
	}
}

// daemonProc is a running `lbd run`.
type daemonProc struct {
	cmd    *exec.Cmd
	path   string // config file
	socket string
	mu     sync.Mutex
	log    bytes.Buffer
	done   chan struct{}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func baseConfig(socket, httpAddr, level string) string {
	return fmt.Sprintf("version: 1\nnode: {name: test-node}\nlisten: {http: %q, socket: %q}\nlog: {level: %s}\n", httpAddr, socket, level)
}

func startDaemon(t testing.TB, path, socket string) *daemonProc {
	t.Helper()
	return startDaemonEnv(t, path, socket, nil)
}

// startDaemonEnv starts lbd run with extra environment variables.
func startDaemonEnv(t testing.TB, path, socket string, env []string) *daemonProc {
	t.Helper()
	cmd := exec.Command(labBin(t), "run", "-c", path)
	cmd.Env = append(os.Environ(), env...)
	return startDaemonCmd(t, cmd, path, socket)
}

// startDaemonCmd starts cmd, an `lbd run -c path` (perhaps inside a lab
// host), and waits for its control socket.
func startDaemonCmd(t testing.TB, cmd *exec.Cmd, path, socket string) *daemonProc {
	t.Helper()
	d := &daemonProc{path: path, socket: socket, done: make(chan struct{}), cmd: cmd}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	go func() { d.cmd.Wait(); pw.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("lbd log:\n%s", d.logs())
		}
	})
	waitFor(t, "the control socket", func() bool {
		c, err := net.Dial("unix", socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return d
}

func (d *daemonProc) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// status is what lbd status -o json says of d. It asks the control
// socket from the test process, as lbd status does (daemon.Call): tests
// poll it every 20 ms, and a race-built lbd status process per poll kept
// both cores busy starting processes. statusCLI goes through lbd status.
func (d *daemonProc) status(t testing.TB) status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := daemon.Call(ctx, d.socket, daemon.Request{Command: "status"})
	if err != nil {
		t.Fatalf("lbd status: %v", err)
	}
	if !resp.OK || resp.Status == nil {
		t.Fatalf("lbd status: %s", resp.Error)
	}
	return *resp.Status
}

// statusCLI is status through lbd status -o json.
func (d *daemonProc) statusCLI(t testing.TB) status.Status {
	t.Helper()
	code, out, errOut := lbd(t, "status", "--socket", d.socket, "-o", "json")
	if code != 0 {
		t.Fatalf("lbd status: exit %d: %s", code, errOut)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("lbd status -o json: %v\n%s", err, out)
	}
	return st
}

// waitFor polls cond until it holds, failing the test after 15 s. It waits
// for an effect; it does not measure how fast the effect comes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitUpTo(t, 15*time.Second, what, cond)
}

// waitUpTo is waitFor with its own deadline; it polls every 20ms, or a
// thousandth of a long deadline (cond may list thousands of objects).
func waitUpTo(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	every := max(20*time.Millisecond, d/1000)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(every)
	}
}

var metricRE = regexp.MustCompile(`(?m)^(lbd_[a-z_]+(?:\{[^}]*\})?) (\S+)$`)

func metrics(t testing.TB, addr string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := map[string]string{}
	for _, match := range metricRE.FindAllStringSubmatch(string(body), -1) {
		m[match[1]] = match[2]
	}
	return m
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace writes content the way editors and Ansible do: to a temporary
// file in the same directory, then rename over the original.
func replace(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".lbd.yaml.swp")
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestRunReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	socket := filepath.Join(dir, "lbd.sock")
	addr := freePort(t)
	good := baseConfig(socket, addr, "info")
	write(t, path, good)
	d := startDaemon(t, path, socket)

	st := d.statusCLI(t)
	if in := d.status(t); in.Node != st.Node || in.Config.Hash != st.Config.Hash {
		t.Errorf("lbd status -o json says node %q, hash %q; the control socket %q, %q", st.Node, st.Config.Hash, in.Node, in.Config.Hash)
	}
	firstHash := st.Config.Hash
	if st.Node != "test-node" || st.LastReload.Result != "success" || firstHash == "" {
		t.Fatalf("status at start: %+v", st)
	}
	if m := metrics(t, addr); m["lbd_config_last_reload_successful"] != "1" {
		t.Fatalf("metrics at start: %v", m)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("control socket mode: %v %v, want 0660", fi.Mode(), err)
	}

	// An invalid file: lbd reload fails with the reason, the old
	// configuration stays, the metric reads 0.
	replace(t, path, good+"pools:\n  - {name: p, addresses: [192.0.2.20-192.0.2.10]}\n")
	code, _, errOut := lbd(t, "reload", "-c", path)
	if code != 1 || !strings.Contains(errOut, "rejected; the previous configuration stays in force") ||
		!strings.Contains(errOut, "range start is after its end") {
		t.Errorf("lbd reload of an invalid file: exit %d, stderr:\n%s", code, errOut)
	}
	// One rejection, or two: the file watcher may have seen the write
	// and tried it too, before or after lbd reload (on a loaded machine
	// they come a second or more apart).
	if m := metrics(t, addr); m["lbd_config_last_reload_successful"] != "0" ||
		m[`lbd_config_reloads_total{result="failure"}`] != "1" && m[`lbd_config_reloads_total{result="failure"}`] != "2" ||
		m[`lbd_config_reloads_total{result="success"}`] != "0" {
		t.Errorf("after a rejected reload: %v", m)
	}
	// The same for machines: -o json, same exit status.
	code, out, _ := lbd(t, "reload", "-o", "json", "-c", path)
	var res struct {
		OK     bool   `json:"ok"`
		DryRun bool   `json:"dry_run"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 1 || err != nil || res.OK || res.DryRun || !strings.Contains(res.Error, "range start is after its end") {
		t.Errorf("lbd reload -o json of an invalid file: exit %d, %q, %v", code, out, err)
	}
	st = d.status(t)
	if st.Config.Hash != firstHash || st.LastReload.Result != "failure" || !strings.Contains(st.LastReload.Error, "range start") {
		t.Errorf("status after a rejected reload: %+v", st)
	}

	// Valid again, replaced editor-style with no explicit reload: the file
	// watcher picks it up and the metric returns to 1.
	debug := baseConfig(socket, addr, "debug")
	replace(t, path, debug)
	waitFor(t, "the watcher to apply the rename-replaced file", func() bool {
		return metrics(t, addr)["lbd_config_last_reload_successful"] == "1"
	})
	st = d.status(t)
	if st.Config.Hash == firstHash || st.LastReload.Source != "file" || st.LastReload.Result != "success" {
		t.Errorf("status after the watcher's reload: %+v", st)
	}

	// The same content again: nothing to do.
	code, out, _ = lbd(t, "reload", "-c", path)
	if code != 0 || !strings.Contains(out, "configuration unchanged") {
		t.Errorf("reload of unchanged file: exit %d, %q", code, out)
	}
	code, out, _ = lbd(t, "reload", "-o", "json", "-c", path)
	res.Error = ""
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || !res.OK || res.Error != "" {
		t.Errorf("lbd reload -o json of an unchanged file: exit %d, %q, %v", code, out, err)
	}

	// SIGHUP reloads too; listen.http moves without a restart.
	addr2 := freePort(t)
	write(t, path, baseConfig(socket, addr2, "debug"))
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "metrics on the new address", func() bool {
		resp, err := http.Get("http://" + addr2 + "/livez")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Errorf("the old metrics address %s still answers", addr)
	}

	// A change only a restart can make is refused, naming the field.
	replace(t, path, baseConfig(filepath.Join(dir, "other.sock"), addr2, "debug"))
	code, _, errOut = lbd(t, "reload", "--socket", socket)
	if code != 1 || !strings.Contains(errOut, "listen.socket changed") {
		t.Errorf("socket move: exit %d, %s", code, errOut)
	}

	// SIGTERM: a clean exit that removes the socket.
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("lbd did not stop on SIGTERM")
	}
	if d.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit code %d after SIGTERM", d.cmd.ProcessState.ExitCode())
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if !strings.Contains(d.logs(), `msg="configuration rejected; the previous one stays in force"`) {
		t.Errorf("no rejection in the log:\n%s", d.logs())
	}
}

// TestSymlinkSwap follows a configuration that is a symlink swapped
// atomically, as configuration-management tools and Kubernetes do.
func TestSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	socket := filepath.Join(dir, "lbd.sock")
	addr := freePort(t)
	write(t, filepath.Join(dir, "v1.yaml"), baseConfig(socket, addr, "info"))
	write(t, filepath.Join(dir, "v2.yaml"), baseConfig(socket, addr, "warn"))
	if err := os.Symlink("v1.yaml", path); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path, socket)
	first := d.status(t).Config.Hash

	tmp := filepath.Join(dir, "lbd.yaml.new")
	if err := os.Symlink("v2.yaml", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the symlink swap to be applied", func() bool {
		st := d.status(t)
		return st.Config.Hash != first && st.LastReload.Result == "success"
	})
}

func TestRunRefusesInvalidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	write(t, path, "version: 1\nlisten: {htp: 127.0.0.1:1}\n")
	code, _, errOut := lbd(t, "run", "-c", path)
	if code != 1 || !strings.Contains(errOut, `listen.htp "htp": unknown key; did you mean "http"?`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestSystemdNotify plays systemd's side of sd_notify on a real datagram
// socket: READY with a STATUS line once lbd serves, WATCHDOG from the main
// loop at half the timeout, STOPPING on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	path := filepath.Join(dir, "lbd.yaml")
	socket := filepath.Join(dir, "lbd.sock")
	write(t, path, baseConfig(socket, freePort(t), "info"))
	d := startDaemonEnv(t, path, socket, []string{"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=400000"})

	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no sd_notify message (waiting for %s)", what)
			return ""
		}
	}
	first := next("READY")
	if !strings.HasPrefix(first, "READY=1\nSTATUS=config ") || !strings.Contains(first, "last reload: success") {
		t.Errorf("first message %q", first)
	}
	watchdogs := 0
	for watchdogs < 3 {
		if m := next("WATCHDOG"); m == "WATCHDOG=1" {
			watchdogs++
		} else if !strings.HasPrefix(m, "STATUS=") {
			t.Errorf("unexpected message %q", m)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	for m := next("STOPPING"); m != "STOPPING=1"; m = next("STOPPING") {
	}
}

// rbacApplied remembers the clusters the shipped manifest went to.
var rbacApplied sync.Map

// lbdKubeconfig gives node its own identity, as docs/vip.md sets it up:
// user lbd:node:NODE in group lbd:nodes (and lbd:control-plane when cp),
// with a client certificate of the cluster's CA, under the shipped
// etc/lbd-rbac.yaml (applied once per cluster). Every test runs lbd with
// exactly the rights it ships with, never as an admin. server replaces
// the API server's URL when not empty (the VIP).
func lbdKubeconfig(t testing.TB, kc *kubetest.Cluster, node string, cp bool, server string) string {
	t.Helper()
	if _, done := rbacApplied.LoadOrStore(kc, true); !done {
		if err := kubetest.Apply(context.Background(), kc.Client, "../../etc/lbd-rbac.yaml"); err != nil {
			t.Fatal(err)
		}
	}
	key := fmt.Sprintf("%p %s %v %s", kc, node, cp, server)
	if path, ok := identities.Load(key); ok {
		return path.(string) // the same file each time: a reload keeps it
	}
	groups := []string{"lbd:nodes"}
	if cp {
		groups = append(groups, "lbd:control-plane")
	}
	path, err := kc.UserKubeconfig("lbd:node:"+node, groups, 365*24*time.Hour, server)
	if err != nil {
		t.Fatal(err)
	}
	identities.Store(key, path)
	return path
}

// identities are the kubeconfigs lbdKubeconfig made.
var identities sync.Map
