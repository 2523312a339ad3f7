package systemdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Container is a booted Debian with systemd as PID 1.
type Container struct {
	// PID is the container's PID 1 as the host sees it: nsenter -t PID,
	// or Ansible's ansible_nsenter_pid.
	PID int
	// NetNS is the network namespace it runs in (a name under
	// /run/netns, for ip -n).
	NetNS string
	// Root is the container's root directory on the host: files written
	// under it appear in the container.
	Root string

	t      testing.TB
	nspawn *exec.Cmd
	exited chan struct{}
	log    string
}

type options struct {
	netns      string
	name       string
	suite      string
	netSysctls bool
}

// An Option changes how Boot starts the container.
type Option func(*options)

// WithNetNS boots the container in an existing network namespace (a name
// under /run/netns, e.g. a lab node's), which the caller keeps owning.
// By default Boot creates one with only lo, and deletes it afterwards.
func WithNetNS(name string) Option { return func(o *options) { o.netns = name } }

// WithSuite boots another Debian release than Suite (a key of Versions),
// e.g. "trixie" for systemd 257.
func WithSuite(suite string) Option { return func(o *options) { o.suite = suite } }

// WithNetSysctls lets the container write /proc/sys/net, the settings of
// its own network namespace (e.g. arp_ignore), as a real node's root can;
// nspawn mounts /proc/sys read-only otherwise. The host's own settings
// stay out of reach: the container always has its own namespace.
func WithNetSysctls() Option { return func(o *options) { o.netSysctls = true } }

// WithName sets the machine name (also its hostname). Default: lbdsd-XXXX.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// Boot starts a fresh container from Image and waits until systemd in it
// reports the system running. Everything is undone by t.Cleanup.
func Boot(t testing.TB, opts ...Option) *Container {
	t.Helper()
	suffix := randomHex(3)
	o := options{name: "lbdsd-" + suffix, suite: Suite}
	for _, opt := range opts {
		opt(&o)
	}
	image := Image(t, o.suite)
	work := t.TempDir()
	c := &Container{t: t, Root: filepath.Join(work, "root"), log: filepath.Join(work, "console.log"), exited: make(chan struct{})}

	// A copy-on-write view of the cached tree.
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mopts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", image, filepath.Join(work, "upper"), filepath.Join(work, "work"))
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", mopts, c.Root).CombinedOutput(); err == nil {
		t.Cleanup(func() {
			if out, err := exec.Command("umount", c.Root).CombinedOutput(); err != nil {
				t.Errorf("systemdtest: umount %s: %v: %s", c.Root, err, out)
			}
		})
	} else {
		t.Logf("systemdtest: no overlay (%v: %s); copying the tree", err, bytes.TrimSpace(out))
		if out, err := exec.Command("cp", "-a", image+"/.", c.Root).CombinedOutput(); err != nil {
			t.Fatalf("systemdtest: copy %s: %v: %s", image, err, out)
		}
	}

	c.NetNS = o.netns
	if c.NetNS == "" {
		c.NetNS = "lbdsd-" + suffix
		if out, err := exec.Command("ip", "netns", "add", c.NetNS).CombinedOutput(); err != nil {
			t.Fatalf("systemdtest: ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", c.NetNS).CombinedOutput(); err != nil {
				t.Errorf("systemdtest: ip netns del %s: %v: %s", c.NetNS, err, out)
			}
		})
		_ = exec.Command("ip", "-n", c.NetNS, "link", "set", "lo", "up").Run()
	}

	console, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	cg, err := newCgroup(o.name)
	if err != nil {
		t.Fatalf("systemdtest: a cgroup for the container: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.remove(); err != nil {
			t.Errorf("systemdtest: %v", err)
		}
	})
	// The shell moves itself into the container's cgroup, then becomes
	// nspawn (same PID: Pdeathsig and childOf below still hold).
	c.nspawn = exec.Command("/bin/sh", "-c", `for f in $LBD_CGROUP_PROCS; do echo $$ >"$f" || exit 1; done; exec "$@"`, "sh",
		"systemd-nspawn", "--directory="+c.Root, "--machine="+o.name, "--boot",
		"--register=no", "--keep-unit", "--console=read-only",
		"--network-namespace-path=/run/netns/"+c.NetNS,
		// Its own network namespace: the container may configure it (nspawn
		// only grants this with --private-network).
		"--capability=CAP_NET_ADMIN",
	)
	c.nspawn.Stdout, c.nspawn.Stderr = console, console
	c.nspawn.Env = append(os.Environ(), "LBD_CGROUP_PROCS="+strings.Join(cg.procs(), " "))
	if o.netSysctls {
		c.nspawn.Env = append(c.nspawn.Env, "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")
	}
	// If the test binary dies, nspawn powers the container off.
	c.nspawn.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.nspawn.Start(); err != nil {
		console.Close()
		t.Fatalf("systemdtest: systemd-nspawn: %v", err)
	}
	go func() {
		_ = c.nspawn.Wait()
		console.Close()
		close(c.exited)
	}()
	t.Cleanup(c.stop)

	if err := c.waitRunning(90 * time.Second); err != nil {
		t.Fatalf("systemdtest: %v\nconsole:\n%s", err, c.consoleTail())
	}
	return c
}

// waitRunning finds PID 1 and waits for `systemctl is-system-running`.
func (c *Container) waitRunning(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var state string
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return errors.New("systemd-nspawn exited during boot")
		default:
		}
		// nspawn's first child may still be its helper that forks PID 1:
		// look again until the child is systemd.
		if c.PID = childOf(c.nspawn.Process.Pid); c.PID == 0 || comm(c.PID) != "systemd" {
			c.PID = 0
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, _ := c.command(ctx, "systemctl", "is-system-running", "--wait").Output()
		cancel()
		state = strings.TrimSpace(string(out))
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _ := c.Run("systemctl", "--failed", "--no-legend")
			return fmt.Errorf("container booted degraded:\n%s", failed)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("system not running after %s (PID 1 %d, state %q)", limit, c.PID, state)
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// childOf returns the first child of pid, or 0.
func childOf(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		if fs := strings.Fields(string(data)); len(fs) > 0 {
			n, _ := strconv.Atoi(fs[0])
			return n
		}
	}
	return 0
}

// command is a command run inside the container with all its namespaces.
func (c *Container) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(c.PID), "-a", "--"}, args...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb",
	}
	return cmd
}

// Run runs a command inside the container and returns its combined output;
// err is non-nil if it failed (an *exec.ExitError for a non-zero exit).
// Commands are killed after a minute.
func (c *Container) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// MustRun is Run that fails the test on an error.
func (c *Container) MustRun(args ...string) string {
	c.t.Helper()
	out, err := c.Run(args...)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Path is the host path of a path inside the container.
func (c *Container) Path(p string) string { return filepath.Join(c.Root, p) }

// WriteFile writes a file inside the container, making its directory.
func (c *Container) WriteFile(p string, data []byte, mode os.FileMode) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.Path(p)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.Path(p), data, mode); err != nil {
		c.t.Fatal(err)
	}
}

// stop powers the container off (SIGTERM to nspawn), and after 15 s
// kills its PID 1, which ends every process in its PID namespace.
func (c *Container) stop() {
	if c.t.Failed() && c.PID != 0 {
		out, _ := c.Run("journalctl", "-b", "-n", "80", "--no-pager")
		c.t.Logf("systemdtest: the container's journal, last lines:\n%s", out)
	}
	_ = c.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(15 * time.Second):
	}
	c.t.Logf("systemdtest: container did not power off in 15s; killing it")
	if c.PID != 0 {
		_ = syscall.Kill(c.PID, syscall.SIGKILL)
	}
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.nspawn.Process.Kill()
		<-c.exited
	}
}

func (c *Container) consoleTail() string {
	data, _ := os.ReadFile(c.log)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
