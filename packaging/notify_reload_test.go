package packaging_test

import (
	"os"
	"strings"
	"testing"

	"github.com/lbdproject/lbd/internal/systemdtest"
)

// TestNotifyReloadDropIn installs the .deb on Debian 13 (systemd 257),
// activates the shipped notify-reload drop-in, and checks that reload keeps
// its meaning: SIGHUP reaches lbd, a valid change is applied, a rejected
// one fails `systemctl reload` and leaves the old configuration in force.
func TestNotifyReloadDropIn(t *testing.T) {
	containerTest(t)
	c := systemdtest.Boot(t, systemdtest.WithSuite("trixie"))
	data, err := os.ReadFile(debFile(t))
	if err != nil {
		t.Fatal(err)
	}
	c.WriteFile("/root/lbd.deb", data, 0o644)
	c.MustRun("dpkg", "-i", "/root/lbd.deb")
	c.MustRun("install", "-D", "-m", "0644", "/usr/share/doc/lbd/examples/notify-reload.conf",
		"/etc/systemd/system/lbd.service.d/notify-reload.conf")
	c.MustRun("systemctl", "daemon-reload")
	if v := strings.TrimSpace(c.MustRun("systemctl", "show", "-P", "Type", "lbd")); v != "notify-reload" {
		t.Fatalf("Type = %q with the drop-in, want notify-reload", v)
	}
	// No control-plane VIP here: no interface to put it on.
	noVIP := strings.Replace(config, "control_plane:\n  addresses: [192.0.2.10]\n  interface: eth0\n", "", 1)
	c.WriteFile("/etc/lbd.yaml", []byte(noVIP), 0o644)
	c.MustRun("systemctl", "start", "lbd")
	pid := mainPID(t, c)
	startHash := lbdStatus(t, c).Config.Hash

	c.WriteFile("/etc/lbd.yaml.new", []byte(strings.Replace(noVIP, "192.0.2.250", "192.0.2.240", 1)), 0o644)
	c.MustRun("sh", "-c", "mv /etc/lbd.yaml.new /etc/lbd.yaml && systemctl reload lbd")
	st := lbdStatus(t, c)
	if st.Config.Hash == startHash || !strings.Contains(st.Config.Summary, "41 IPv4 addresses") {
		t.Errorf("after a valid reload: hash %s (was %s), summary %q", st.Config.Hash, startHash, st.Config.Summary)
	}
	goodHash := st.Config.Hash

	c.WriteFile("/etc/lbd.yaml.new", []byte(noVIP+"bogus: 1\n"), 0o644)
	if out, err := c.Run("sh", "-c", "mv /etc/lbd.yaml.new /etc/lbd.yaml && systemctl reload lbd"); err == nil {
		t.Errorf("with Type=notify-reload, systemctl reload of an invalid file succeeded: %s", out)
	}
	if out, _ := c.Run("systemctl", "is-active", "lbd"); strings.TrimSpace(out) != "active" {
		t.Errorf("after a rejected reload: is-active = %q", out)
	}
	if st := lbdStatus(t, c); st.Config.Hash != goodHash || st.LastReload.Result != "failure" {
		t.Errorf("after a rejected reload: hash %s (want the old %s), last reload %q", st.Config.Hash, goodHash, st.LastReload.Result)
	}
	if mainPID(t, c) != pid {
		t.Errorf("lbd restarted during the reloads")
	}
	// The reload went through the signal protocol, not only ExecReload=.
	bySignal := 0
	for _, r := range journal(t, c, "LBD_EVENT=config_rejected") {
		if r["LBD_SOURCE"] == "signal" {
			bySignal++
		}
	}
	if bySignal != 1 {
		t.Errorf("%d rejections through SIGHUP (LBD_SOURCE=signal), want 1: systemd did not use the notify-reload protocol", bySignal)
	}
}
