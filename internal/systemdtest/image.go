package systemdtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Suite is the Debian release Boot uses by default: Debian 12, systemd 252.
const Suite = "bookworm"

// Versions keys the cached tree of each suite Boot can use: change a key
// whenever Packages change, so that every machine builds the new tree once.
// trixie (Debian 13, systemd 257) is for what needs a newer systemd.
var Versions = map[string]string{
	"bookworm": "bookworm-1",
	"trixie":   "trixie-1",
}

// Packages are installed besides Debian's minbase.
var Packages = []string{"systemd", "systemd-sysv", "dbus", "iproute2", "python3"}

// Environment variables.
const (
	// EnvRequire, set to anything but "0", makes a missing prerequisite
	// fail the test instead of skipping it.
	EnvRequire = "LBD_REQUIRE_SYSTEMD"
	// EnvMirror overrides the Debian mirror read from the apt sources.
	EnvMirror = "LBD_DEBIAN_MIRROR"
)

// skip skips the test, or fails it under EnvRequire.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if v := os.Getenv(EnvRequire); v != "" && v != "0" {
		t.Fatalf("systemdtest: "+format+" (%s is set, so this fails instead of skipping)", append(args, EnvRequire)...)
	}
	t.Skipf("systemdtest: "+format, args...)
}

// prerequisites skips the test unless it can boot a container.
func prerequisites(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "needs root (debootstrap, systemd-nspawn, network namespaces)")
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "nsenter", "ip", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(t, "needs %s (apt-get install debootstrap systemd-container iproute2)", tool)
		}
	}
}

// CacheDir is where the cached trees live.
func CacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "lbd", "nspawn")
}

// Image returns the cached Debian tree of suite (a key of Versions),
// building it on first use (debootstrap, a few minutes; concurrent callers
// wait on a lock). Never write into it: Boot gives every test its own
// copy-on-write view.
func Image(t testing.TB, suite string) string {
	t.Helper()
	prerequisites(t)
	version, ok := Versions[suite]
	if !ok {
		t.Fatalf("systemdtest: no suite %q (known: bookworm, trixie)", suite)
	}
	dir := filepath.Join(CacheDir(), version)
	root := filepath.Join(dir, "root")
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(done); err == nil { // built while we waited
		return root
	}

	mirror, err := Mirror()
	if err != nil {
		skip(t, "%v", err)
	}
	tmp := root + ".tmp"
	_ = os.RemoveAll(tmp)
	log := filepath.Join(dir, "debootstrap.log")
	t.Logf("systemdtest: building the Debian %s tree in %s from %s (once; a few minutes; log %s)", suite, root, mirror, log)
	start := time.Now()
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(Packages, ","), suite, tmp, mirror)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.Close()
	if err != nil {
		tail, _ := exec.Command("tail", "-n", "20", log).Output()
		_ = os.RemoveAll(tmp)
		t.Fatalf("systemdtest: debootstrap: %v\n%s", err, tail)
	}
	// Quieter boots: no getty on the console nspawn does not give it.
	_ = os.Remove(filepath.Join(tmp, "etc/systemd/system/getty.target.wants/getty@tty1.service"))
	_ = os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("systemdtest: built in %s", time.Since(start).Round(time.Second))
	return root
}

// Mirror returns the Debian mirror to debootstrap from: EnvMirror, else
// the first source in the host's apt configuration that serves Suite (the
// same archive serves the other suites).
func Mirror() (string, error) {
	if m := os.Getenv(EnvMirror); m != "" {
		return m, nil
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		if m := mirrorDeb822(f); m != "" {
			return m, nil
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		if m := mirrorOneLine(f); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian %s mirror in the apt sources; set %s", Suite, EnvMirror)
}

// mirrorDeb822 reads a deb822 .sources file: stanzas of Types, URIs,
// Suites, ...
func mirrorDeb822(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for stanza := range strings.SplitSeq(string(data), "\n\n") {
		fields := map[string]string{}
		for line := range strings.SplitSeq(stanza, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		}
		if strings.Contains(fields["enabled"], "no") || !contains(fields["types"], "deb") || !contains(fields["suites"], Suite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return uris[0]
		}
	}
	return ""
}

// mirrorOneLine reads "deb [options] URI suite components" lines.
func mirrorOneLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || fs[0] != "deb" {
			continue
		}
		fs = fs[1:]
		if strings.HasPrefix(fs[0], "[") {
			for len(fs) > 0 && !strings.HasSuffix(fs[0], "]") {
				fs = fs[1:]
			}
			if len(fs) > 0 {
				fs = fs[1:]
			}
		}
		if len(fs) >= 2 && fs[1] == Suite {
			return fs[0]
		}
	}
	return ""
}

func contains(list, word string) bool {
	return slices.Contains(strings.Fields(list), word)
}
