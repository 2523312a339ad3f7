package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lbdproject/lbd/internal/metallb"
)

// maxImportInput bounds what import-metallb reads from one file.
const maxImportInput = 16 << 20

const importUsage = `Usage: lbd import-metallb [--strict] [FILE...]

Converts MetalLB configuration (IPAddressPool, L2Advertisement,
BGPAdvertisement, BGPPeer, Community and BFDProfile objects, as YAML files
or kubectl List output) into an lbd configuration, written to stdout. Every
field lbd cannot carry over exactly is listed on stderr. With no FILE, or
FILE -, it reads standard input:

  kubectl get -n metallb-system ipaddresspools,l2advertisements,\
bgpadvertisements,bgppeers,communities,bfdprofiles -o yaml \
    | lbd import-metallb > lbd.yaml

Exit status: 0 converted (warnings allowed), 1 conversion errors, warnings
under --strict, or a result lbd would reject (nothing is written), 2 bad
usage, unreadable input, or input that is not MetalLB YAML.
See docs/migrating.md.

`

// cmdImportMetallb converts MetalLB configuration into lbd's: the file on
// stdout, the warnings and errors on stderr. It reads only its inputs and
// touches no cluster.
func cmdImportMetallb(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbd import-metallb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	strict := fs.Bool("strict", false, "treat every warning as an error (exit 1, nothing written)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	var inputs []metallb.Input
	stdinRead := false
	for _, name := range files {
		data, err := readImportInput(name, stdin, &stdinRead, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "lbd import-metallb: %v\n", err)
			return exitUsage
		}
		inputs = append(inputs, metallb.Input{Name: name, Data: data})
	}

	res, err := metallb.Convert(inputs...)
	if err != nil {
		fmt.Fprintf(stderr, "lbd import-metallb: %v\n", err)
		return exitUsage
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(stderr, "error: %s\n", e)
	}
	fmt.Fprintf(stderr, "lbd import-metallb: %s\n", res.Summary)
	switch {
	case len(res.Errors) > 0:
		fmt.Fprintln(stderr, "lbd import-metallb: nothing written; fix the errors above in the MetalLB objects (or leave those objects out) and convert again")
		return exitInvalid
	case *strict && len(res.Warnings) > 0:
		what := fmt.Sprintf("the %d warnings above count as errors", len(res.Warnings))
		if len(res.Warnings) == 1 {
			what = "the 1 warning above counts as an error"
		}
		fmt.Fprintf(stderr, "lbd import-metallb: --strict: %s; nothing written\n", what)
		return exitInvalid
	}
	if _, err := stdout.Write(res.Config); err != nil {
		fmt.Fprintf(stderr, "lbd import-metallb: writing the configuration: %v\n", err)
		return exitUsage
	}
	if len(res.PasswordFiles) > 0 {
		fmt.Fprintf(stderr, "lbd import-metallb: before lbd starts, create on every node, mode 0600, holding the peer's password: %s\n", strings.Join(res.PasswordFiles, ", "))
	}
	return exitOK
}

// parseInterspersed parses flags given before, between or after the file
// names, as users type them: lbd import-metallb a.yaml --strict.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return files, nil
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// readImportInput reads one named input, "-" being standard input (once).
func readImportInput(name string, stdin io.Reader, stdinRead *bool, stderr io.Writer) ([]byte, error) {
	r := stdin
	if name == "-" {
		if *stdinRead {
			return nil, fmt.Errorf("standard input (-) given twice")
		}
		*stdinRead = true
		if f, ok := stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(stderr, "lbd import-metallb: reading MetalLB YAML from the terminal; end with Ctrl-D (lbd import-metallb -h for help)")
			}
		}
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxImportInput+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", displayInput(name), err)
	case len(data) > maxImportInput:
		return nil, fmt.Errorf("%s is larger than %d bytes", displayInput(name), maxImportInput)
	}
	return data, nil
}

func displayInput(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}
