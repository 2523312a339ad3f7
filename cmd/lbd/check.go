package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

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
// Exit 0: valid; 1: invalid (every problem listed); 2: cannot be read.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("check", stderr)
	quiet := fs.Bool("q", false, "print nothing when the file is valid")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbd check: unexpected argument %q; use -c FILE\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*path)
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s: %d problem%s\n", *path, len(errs), plural(len(errs)))
		return exitInvalid
	case err != nil:
		fmt.Fprintf(stderr, "lbd check: %v\n", err)
		return exitUsage
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: ok: %s\n", *path, cfg.Summary())
	}
	return exitOK
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
