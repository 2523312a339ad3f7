package daemon

import (
	"context"
	"strings"
	"testing"

	"github.com/lbdproject/lbd/internal/config"
)

// TestLocalRefusesRestartOnly: a reload that changes any setting of
// config.RestartOnly is refused, naming it; the others pass.
func TestLocalRefusesRestartOnly(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{
			Node:       config.Node{Name: "n1"},
			Kubernetes: config.Kubernetes{Kubeconfig: "/etc/lbd/kubeconfig", Namespace: "lbd"},
			Listen:     config.Listen{Socket: "/run/lbd/lbd.sock", HTTP: "127.0.0.1:7475"},
			Log:        config.Log{Format: "auto", Level: "info"},
		}
	}
	change := map[string]func(*config.Config){
		"node.name":     func(c *config.Config) { c.Node.Name = "n2" },
		"kubernetes":    func(c *config.Config) { c.Kubernetes.Namespace = "other" },
		"peers":         func(c *config.Config) { c.Peers = &config.Peers{KeyFile: "/etc/lbd/peers.key", Port: 7946} },
		"listen.socket": func(c *config.Config) { c.Listen.Socket = "/run/lbd/other.sock" },
		"log.format":    func(c *config.Config) { c.Log.Format = "json" },
	}
	var l Local
	for _, r := range config.RestartOnly {
		mutate, ok := change[r.Key]
		if !ok {
			t.Errorf("no test change for the restart-only setting %s", r.Key)
			continue
		}
		next := base()
		mutate(next)
		err := l.Check(context.Background(), base(), next)
		if err == nil || !strings.Contains(err.Error(), r.Key) || !strings.Contains(err.Error(), "systemctl restart lbd") {
			t.Errorf("a change of %s: %v, want it refused by name", r.Key, err)
		}
	}
	if len(change) != len(config.RestartOnly) {
		t.Errorf("%d test changes for %d restart-only settings", len(change), len(config.RestartOnly))
	}
	withPeers := func(port uint16) *config.Config {
		c := base()
		c.Peers = &config.Peers{KeyFile: "/etc/lbd/peers.key", Port: port}
		return c
	}
	for _, tc := range []struct {
		prev, next *config.Config
		want       string
	}{
		{withPeers(7946), withPeers(7947), "the peers section changed"},
		{withPeers(7946), base(), "the peers section was removed"},
		{withPeers(7946), withPeers(7946), ""},
	} {
		err := l.Check(context.Background(), tc.prev, tc.next)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("peers %+v to %+v: %v, want %q", tc.prev.Peers, tc.next.Peers, err, tc.want)
		}
	}
	next := base()
	next.Listen.HTTP, next.Log.Level = "127.0.0.1:7476", "debug"
	if err := l.Check(context.Background(), base(), next); err != nil {
		t.Errorf("a reloadable change refused: %v", err)
	}
}
