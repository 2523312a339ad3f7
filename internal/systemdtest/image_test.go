package systemdtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromAptSources(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "debian.sources")
	os.WriteFile(deb822, []byte(`Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
# a comment
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb
URIs: http://deb.example/debian http://other.example/debian
Suites: bookworm bookworm-updates
Components: main
`), 0o644)
	if got := mirrorDeb822(deb822); got != "http://deb.example/debian" {
		t.Errorf("deb822: got %q", got)
	}
	list := filepath.Join(dir, "sources.list")
	os.WriteFile(list, []byte(`# deb http://commented.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/x.gpg] http://deb.example/debian bookworm main
`), 0o644)
	if got := mirrorOneLine(list); got != "http://deb.example/debian" {
		t.Errorf("one-line: got %q", got)
	}
}

// TestImage builds (or finds) the cached tree of every suite and checks
// what the tests rely on is in it. scripts/test.sh runs it first, with a
// long timeout, so that a cold cache does not eat the tests' own.
func TestImage(t *testing.T) {
	for suite := range Versions {
		t.Run(suite, func(t *testing.T) {
			root := Image(t, suite)
			for _, f := range []string{"usr/lib/systemd/systemd", "usr/bin/systemctl", "usr/bin/python3", "usr/bin/dbus-daemon", "usr/bin/ip"} {
				if _, err := os.Stat(filepath.Join(root, f)); err != nil {
					t.Errorf("%s tree: %v", suite, err)
				}
			}
		})
	}
}
