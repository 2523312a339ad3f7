package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/lbdproject/lbd/internal/cliflags"
)

// subcommands are lbd's subcommands with a one-line summary, in the order
// of the usage text. Their flags are read from their own flag sets (by
// asking each for -h), so completions cannot drift from them.
var subcommands []subcommand

type subcommand struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

// init fills subcommands (a literal would be an initialization cycle:
// completion reads the list).
func init() {
	subcommands = []subcommand{
		{"run", "run the daemon (systemd starts this)", func(a []string, _, e io.Writer) int { return cmdRun(a, e) }},
		{"check", "validate a configuration file", cmdCheck},
		{"reload", "make the running daemon reload its file", cmdReload},
		{"status", "show what the running daemon is doing", cmdStatus},
		{"cleanup", "remove a control-plane VIP a killed lbd left behind", cmdCleanup},
		{"import-metallb", "convert MetalLB YAML to lbd's configuration", func(a []string, o, e io.Writer) int {
			return cmdImportMetallb(a, strings.NewReader(""), o, e)
		}},
		{"version", "print the version", cmdVersion},
		{"completion", "print a shell completion script (bash, zsh, fish)", cmdCompletion},
	}
}

// flagInfo is one flag of a subcommand.
type flagInfo struct {
	name, arg, usage string // arg: the value's name ("" for a bool)
}

// subcommandFlags returns the flags of subcommand i, read from its -h.
func subcommandFlags(i int) []flagInfo {
	var out, errOut bytes.Buffer
	subcommands[i].run([]string{"-h"}, &out, &errOut)
	var flags []flagInfo
	for _, f := range cliflags.Parse(out.String() + errOut.String()) {
		flags = append(flags, flagInfo{name: f.Name, arg: f.Arg, usage: f.Usage})
	}
	return flags
}

// values are the words a flag's value completes to; files otherwise.
func (f flagInfo) values() []string {
	if f.arg == "format" {
		return []string{"text", "json"}
	}
	return nil
}

// dash is how a flag is typed: -c, --config.
func (f flagInfo) dash() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// cmdCompletion prints a completion script for a shell.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbd completion", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	shells := map[string]func(io.Writer){"bash": completeBash, "zsh": completeZsh, "fish": completeFish}
	if fs.NArg() != 1 || shells[fs.Arg(0)] == nil {
		fmt.Fprintln(stderr, "Usage: lbd completion bash|zsh|fish")
		return exitUsage
	}
	shells[fs.Arg(0)](stdout)
	return exitOK
}

func subcommandNames() []string {
	var names []string
	for _, s := range subcommands {
		names = append(names, s.name)
	}
	return names
}

func completeBash(w io.Writer) {
	fmt.Fprintf(w, `# bash completion for lbd (lbd completion bash). Generated from lbd's own flags.
_lbd() {
	local cur prev sub opts
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	sub=${COMP_WORDS[1]}
	case "$sub $prev" in
`, strings.Join(subcommandNames(), " "))
	for i, s := range subcommands {
		for _, f := range subcommandFlags(i) {
			if f.arg == "" {
				continue
			}
			pat := fmt.Sprintf("%s\\ -%s|%s\\ --%s", s.name, f.name, s.name, f.name)
			if len(f.name) == 1 {
				pat = fmt.Sprintf("%s\\ -%s", s.name, f.name)
			}
			if v := f.values(); v != nil {
				fmt.Fprintf(w, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", pat, strings.Join(v, " "))
			} else {
				fmt.Fprintf(w, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", pat)
			}
		}
	}
	fmt.Fprintf(w, "\tesac\n\tcase \"$sub\" in\n")
	for i, s := range subcommands {
		var opts []string
		for _, f := range subcommandFlags(i) {
			opts = append(opts, f.dash())
		}
		if s.name == "completion" {
			opts = append(opts, "bash", "zsh", "fish")
		}
		fmt.Fprintf(w, "\t%s) opts=%q ;;\n", s.name, strings.Join(opts, " "))
	}
	fmt.Fprintf(w, `	*) return ;;
	esac
	if [[ $cur == -* || $sub == completion ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _lbd lbd
`)
}

// zshQuote makes s safe inside a single-quoted _arguments spec.
func zshQuote(s string) string {
	r := strings.NewReplacer("'", `'\''`, "[", `\[`, "]", `\]`, ":", `\:`)
	return r.Replace(s)
}

func completeZsh(w io.Writer) {
	fmt.Fprintf(w, "#compdef lbd\n# zsh completion for lbd (lbd completion zsh). Generated from lbd's own flags.\n_lbd() {\n\tlocal -a subcommands\n\tsubcommands=(\n")
	for _, s := range subcommands {
		fmt.Fprintf(w, "\t\t'%s:%s'\n", s.name, zshQuote(s.summary))
	}
	fmt.Fprintf(w, "\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'lbd subcommand' subcommands\n\t\treturn\n\tfi\n\tlocal sub=${words[2]}\n\tshift words\n\t(( CURRENT-- ))\n\tcase $sub in\n")
	for i, s := range subcommands {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments -s", s.name)
		for _, f := range subcommandFlags(i) {
			spec := fmt.Sprintf("%s[%s]", f.dash(), zshQuote(f.usage))
			if f.arg != "" {
				action := "_files"
				if v := f.values(); v != nil {
					action = "(" + strings.Join(v, " ") + ")"
				}
				spec += fmt.Sprintf(":%s:%s", f.arg, action)
			}
			fmt.Fprintf(w, " \\\n\t\t\t'%s'", spec)
		}
		switch s.name {
		case "completion":
			fmt.Fprintf(w, " \\\n\t\t\t'1:shell:(bash zsh fish)'")
		case "import-metallb":
			fmt.Fprintf(w, " \\\n\t\t\t'*:file:_files'")
		}
		fmt.Fprintf(w, "\n\t\t;;\n")
	}
	fmt.Fprintf(w, "\tesac\n}\n_lbd \"$@\"\n")
}

func completeFish(w io.Writer) {
	fmt.Fprintf(w, "# fish completion for lbd (lbd completion fish). Generated from lbd's own flags.\ncomplete -c lbd -f\n")
	names := subcommandNames()
	for _, s := range subcommands {
		fmt.Fprintf(w, "complete -c lbd -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n",
			strings.Join(names, " "), s.name, fishQuote(s.summary))
	}
	for i, s := range subcommands {
		for _, f := range subcommandFlags(i) {
			opt := "-l " + f.name
			if len(f.name) == 1 {
				opt = "-s " + f.name
			}
			line := fmt.Sprintf("complete -c lbd -n '__fish_seen_subcommand_from %s' %s -d %s", s.name, opt, fishQuote(f.usage))
			if f.arg != "" {
				if v := f.values(); v != nil {
					line += " -x -a " + fishQuote(strings.Join(v, " "))
				} else {
					line += " -r -F"
				}
			}
			fmt.Fprintln(w, line)
		}
		switch s.name {
		case "completion":
			fmt.Fprintln(w, "complete -c lbd -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'")
		case "import-metallb":
			fmt.Fprintln(w, "complete -c lbd -n '__fish_seen_subcommand_from import-metallb' -F")
		}
	}
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
