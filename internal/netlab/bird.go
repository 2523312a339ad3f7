package netlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BIRD is BIRD 2 (Debian's bird2) running by hand in a host, with its
// control socket in a private directory.
type BIRD struct {
	t   testing.TB
	Dir string
}

// StartBIRD runs bird in h with configuration conf (the text %DIR% is
// replaced by BIRD.Dir) and waits until it answers birdc. It skips the
// test when BIRD 2 is not installed. It is killed when the test ends; on
// failure its log is logged.
func StartBIRD(t testing.TB, h *Host, conf string) *BIRD {
	t.Helper()
	for _, bin := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip("BIRD 2 is not installed (apt-get install bird2)")
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(conf, "%DIR%", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &BIRD{t: t, Dir: dir}
	cmd := h.Command("bird", "-f", "-c", p, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid"))
	out, _ := os.Create(filepath.Join(dir, "bird.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			o, _ := os.ReadFile(filepath.Join(dir, "bird.out"))
			l, _ := os.ReadFile(filepath.Join(dir, "bird.log"))
			t.Logf("bird output:\n%s\n%s", o, l)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Birdc("show status"); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatal("netlab: bird did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Birdc runs one birdc command.
func (b *BIRD) Birdc(cmd string) (string, error) {
	args := append([]string{"-s", filepath.Join(b.Dir, "bird.ctl")}, strings.Fields(cmd)...)
	out, err := exec.Command("birdc", args...).CombinedOutput()
	return string(out), err
}

// BFDSessions returns the state of bird's BFD sessions by peer address
// ("Up", "Down", "Init"), from `show bfd sessions`.
func (b *BIRD) BFDSessions() map[string]string {
	b.t.Helper()
	out, err := b.Birdc("show bfd sessions")
	if err != nil {
		b.t.Fatalf("birdc show bfd sessions: %v\n%s", err, out)
	}
	got := map[string]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		// IP address, Interface, State, Since, Interval, Timeout
		if len(f) >= 3 && strings.Count(f[0], ".")+strings.Count(f[0], ":") >= 2 && !strings.HasSuffix(f[0], ":") {
			got[f[0]] = f[2]
		}
	}
	return got
}

// Established returns the neighbor addresses of bird's BGP sessions that
// are Established, from `show protocols all`.
func (b *BIRD) Established() map[string]bool {
	b.t.Helper()
	out, err := b.Birdc("show protocols all")
	if err != nil {
		b.t.Fatalf("birdc show protocols: %v\n%s", err, out)
	}
	got := map[string]bool{}
	established := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "BGP":
			established = f[len(f)-1] == "Established"
		case len(f) >= 3 && f[0] == "Neighbor" && f[1] == "address:" && established:
			got[f[2]] = true
		}
	}
	return got
}
