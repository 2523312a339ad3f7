package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/lbdproject/lbd/internal/config"
)

// newFlags returns a flag set with the -c/--config flag every subcommand has.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("lbd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", DefaultConfig, "configuration `file`")
	fs.StringVar(path, "c", DefaultConfig, "configuration `file` (shorthand)")
	return fs, path
}

// cmdCheck validates a file without touching anything else: no daemon, no
// network, no cluster. It works as an Ansible `validate: lbd check -c %s`.
// Exit 0: valid (warnings are printed, not failed, unless --strict);
// 1: invalid (every problem listed); 2: cannot be read.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("check", stderr)
	quiet := fs.Bool("q", false, "print nothing when the file is valid and has no warnings")
	strict := fs.Bool("strict", false, "treat warnings as problems (exit 1)")
	offline := fs.Bool("offline", false, "skip the checks of this machine (password files, kubeconfig, interfaces), for CI; says what it skipped")
	output := fs.String("o", "text", "output `format`: text or json")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbd check: unexpected argument %q; use -c FILE\n", fs.Arg(0))
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "lbd check: -o must be text or json, not %q\n", *output)
		return exitUsage
	}
	cfg, err := config.Options{Offline: *offline}.Load(*path)
	var errs config.Errors
	if err != nil && !errors.As(err, &errs) {
		if *output == "json" {
			writeJSON(stdout, checkResult{File: *path, Error: err.Error()})
		} else {
			fmt.Fprintf(stderr, "lbd check: %v\n", err)
		}
		return exitUsage
	}
	res := checkResult{File: *path, Valid: err == nil, Problems: errs}
	if cfg != nil {
		res.Summary, res.Warnings, res.Skipped = cfg.Summary(), cfg.Warnings, cfg.Skipped
		if *strict && len(cfg.Warnings) > 0 {
			res.Valid = false
		}
	}
	if res.Problems == nil {
		res.Problems = config.Errors{}
	}
	if res.Warnings == nil {
		res.Warnings = config.Errors{}
	}
	if *output == "json" {
		writeJSON(stdout, res)
	} else {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "%s (warning)\n", w)
		}
		switch {
		case len(errs) > 0:
			fmt.Fprintf(stderr, "%s: %s\n", *path, count(len(errs), "problem"))
		case !res.Valid:
			fmt.Fprintf(stderr, "%s: %s, which --strict counts as problems\n", *path, count(len(res.Warnings), "warning"))
		case !*quiet || len(res.Warnings) > 0:
			line := fmt.Sprintf("%s: ok: %s", *path, res.Summary)
			if len(res.Warnings) > 0 {
				line += "; " + count(len(res.Warnings), "warning")
			}
			fmt.Fprintln(stdout, line)
		}
		if len(res.Skipped) > 0 && (!*quiet || !res.Valid) {
			fmt.Fprintf(stdout, "%s: not checked (--offline): %s\n", *path, strings.Join(res.Skipped, "; "))
		}
	}
	if !res.Valid {
		return exitInvalid
	}
	return exitOK
}

// checkResult is `lbd check -o json`.
type checkResult struct {
	File     string        `json:"file"`
	Valid    bool          `json:"valid"`
	Summary  string        `json:"summary,omitempty"`
	Problems config.Errors `json:"problems"`
	Warnings config.Errors `json:"warnings"`
	Skipped  []string      `json:"skipped,omitempty"`
	// Error is set when the file cannot be read at all (exit 2).
	Error string `json:"error,omitempty"`
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// count writes n and noun, plural when n is not 1: "1 problem", "3 problems".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
