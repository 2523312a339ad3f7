package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPeerKey(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, data string
		mode       os.FileMode
		size       int    // the key's length, or 0 for an error containing problem
		problem    string // never the key itself
	}{
		{"aes-256", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o600, 32, ""},
		{"aes-128 without newline", "MDEyMzQ1Njc4OWFiY2RlZg==", 0o600, 16, ""},
		{"10 bytes", "MDEyMzQ1Njc4OQ==\n", 0o600, 0, "a key of 10 bytes"},
		{"not base64", "correct horse battery staple\n", 0o600, 0, "does not hold one base64 key"},
		{"empty", "\n", 0o600, 0, "is empty"},
		{"group readable", "MDEyMzQ1Njc4OWFiY2RlZg==\n", 0o640, 0, "readable or writable by group or others (mode 0640)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.data), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			key, err := ReadPeerKey(path)
			switch {
			case tt.size > 0 && (err != nil || len(key) != tt.size):
				t.Fatalf("got %d bytes, %v; want %d", len(key), err, tt.size)
			case tt.size == 0 && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Fatalf("error %v, want one saying %q", err, tt.problem)
			case err != nil && strings.TrimSpace(tt.data) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.data)):
				t.Fatalf("the error shows the file's content: %v", err)
			}
		})
	}
	if _, err := ReadPeerKey(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64") {
		t.Errorf("a missing file: %v, want how to make one", err)
	}
}

func TestPeersSection(t *testing.T) {
	key := filepath.Join(t.TempDir(), "peers.key")
	if err := os.WriteFile(key, []byte("MDEyMzQ1Njc4OWFiY2RlZg==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(peers string) (*Config, error) {
		return Options{Hostname: func() (string, error) { return "n1", nil }}.Parse("lbd.yaml", []byte("version: 1\npeers: "+peers+"\n"))
	}
	c, err := parse("{key_file: " + key + "}")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Peers
	if p.Port != 7946 || p.ProbeInterval.String() != "150ms" || p.HeartbeatInterval.String() != "15s" || p.FallbackAfter.String() != "3s" || p.KeyFingerprint == "" {
		t.Errorf("defaults: %+v", p)
	}
	for _, tt := range []struct{ peers, want string }{
		{"{}", `peers.key_file: required`},
		{"{key_file: c2VjcmV0}", `peers.key_file: must be the absolute path of a file holding the key (the value written is not shown`},
		{"{key_file: " + key + ", probe_interval: 100ms, probe_timeout: 100ms}", `peers.probe_timeout "100ms": must be less than probe_interval`},
		{"{key_file: " + key + ", heartbeat_interval: 30s, heartbeat_duration: 45s}", `peers.heartbeat_duration "45s": must be at least twice heartbeat_interval`},
		{"{key_file: " + key + ", fallback_after: 200ms}", `peers.fallback_after "200ms": must be at least 4 × probe_interval`},
		{"{key_file: " + key + ", address: 0.0.0.0}", `peers.address "0.0.0.0": must be one unicast address`},
	} {
		if _, err := parse(tt.peers); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("peers: %s: %v, want %q", tt.peers, err, tt.want)
		}
	}
}
