package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSubcommandsMatchUsage: the list completions are made from is the
// usage text's list, and every one of them has flags read from its -h
// where it has any.
func TestSubcommandsMatchUsage(t *testing.T) {
	var inUsage []string
	for _, m := range regexp.MustCompile(`(?m)^  lbd ([a-z-]+)`).FindAllStringSubmatch(usage, -1) {
		inUsage = append(inUsage, m[1])
	}
	if !slices.Equal(inUsage, subcommandNames()) {
		t.Errorf("usage lists %v, completions %v", inUsage, subcommandNames())
	}
	for i, s := range subcommands {
		flags := subcommandFlags(i)
		if s.name == "check" && !slices.ContainsFunc(flags, func(f flagInfo) bool { return f.name == "q" && f.usage != "" }) {
			t.Errorf("check's flags lack -q with its usage: %+v", flags)
		}
		if s.name == "status" && !slices.ContainsFunc(flags, func(f flagInfo) bool { return f.name == "socket" && f.arg == "path" }) {
			t.Errorf("status's flags lack --socket path: %+v", flags)
		}
	}
}

// TestCompletionBash loads the bash script into a real bash and asks it
// what it completes.
func TestCompletionBash(t *testing.T) {
	t.Parallel()
	code, script, _ := lbd(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("lbd completion bash: exit %d", code)
	}
	file := filepath.Join(t.TempDir(), "lbd.bash")
	os.WriteFile(file, []byte(script), 0o644)
	for words, want := range map[string]string{
		"lbd ch":                "check",
		"lbd check --st":        "--strict",
		"lbd status -o ''":      "text json",
		"lbd completion z":      "zsh",
		"lbd reload --dry":      "--dry-run",
		"lbd import-metallb --": "--strict",
	} {
		out, err := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(`+words+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _lbd; echo "${COMPREPLY[*]}"`, "bash", file).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("bash completes %q to %q (%v), want %q", words, out, err, want)
		}
	}
}

// TestCompletionZshFish: zsh and fish parse their scripts, and fish
// completes from its script (scripts/test.sh installs both).
func TestCompletionZshFish(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, shell := range []string{"zsh", "fish"} {
		if _, err := exec.LookPath(shell); err != nil {
			if os.Getenv("LBD_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is not installed (apt-get install zsh fish)", shell)
			}
			t.Skipf("%s is not installed (apt-get install zsh fish)", shell)
		}
		code, script, _ := lbd(t, "completion", shell)
		if code != 0 {
			t.Fatalf("lbd completion %s: exit %d", shell, code)
		}
		file := filepath.Join(dir, "lbd."+shell)
		os.WriteFile(file, []byte(script), 0o644)
		if out, err := exec.Command(shell, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	out, err := exec.Command("fish", "-c", "source $argv[1]; complete -C 'lbd check --st'; complete -C 'lbd status -o '", filepath.Join(dir, "lbd.fish")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--strict") || !strings.Contains(string(out), "json") {
		t.Errorf("fish completes: %v\n%s", err, out)
	}
}
