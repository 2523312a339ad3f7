// Command lbd is the bare-metal load balancer for Kubernetes: one daemon per
// node that holds the control-plane VIP and gives LoadBalancer Services
// external addresses, announced by ARP/NDP or BGP.
//
//	lbd run      [-c FILE]            run the daemon (systemd starts this)
//	lbd check    [-c FILE]            validate a configuration file
//	lbd reload   [-c FILE] [--socket] ask the running daemon to reload
//	lbd status   [-c FILE] [-o json]  show what the running daemon is doing
//	lbd cleanup  [-c FILE]            remove a VIP a killed lbd left (ExecStopPost)
//	lbd import-metallb [--strict] [FILE...]  convert MetalLB configuration
//	lbd version                       print the version
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
)

// version is set at build time: -ldflags "-X main.version=$(hack/version.sh)",
// the same string as the .deb's and .rpm's version.
var version = "dev"

// DefaultConfig is where lbd looks for its configuration.
const DefaultConfig = "/etc/lbd.yaml"

// Exit codes shared by the subcommands.
const (
	exitOK      = 0
	exitInvalid = 1 // the configuration is invalid, or the daemon refused
	exitUsage   = 2 // bad flags, unreadable file, daemon unreachable
)

const usage = `lbd — bare-metal load balancer for Kubernetes

Usage:
  lbd run     [-c FILE]                run the daemon (systemd starts this)
  lbd check   [-c FILE]                validate a configuration file
  lbd reload  [-c FILE] [--socket S] [--dry-run] [-o text|json]
                                       make the running daemon reload its file
  lbd status  [-c FILE] [--socket S] [-o text|json]
                                       show what the running daemon is doing
  lbd cleanup [-c FILE]                remove a control-plane VIP a killed lbd
                                       left behind (the unit's ExecStopPost)
  lbd import-metallb [--strict] [FILE...]
                                       convert MetalLB YAML (FILEs, or stdin) to lbd's
  lbd version [-o text|json]           print the version
  lbd completion bash|zsh|fish         print a shell completion script

FILE defaults to /etc/lbd.yaml. Documentation: docs/config.md.
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "reload":
		return cmdReload(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "cleanup":
		return cmdCleanup(rest, stdout, stderr)
	case "import-metallb":
		return cmdImportMetallb(rest, os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		return cmdVersion(rest, stdout, stderr)
	case "completion":
		return cmdCompletion(rest, stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "lbd: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// parseFailed is the exit code after a flag parse error: 0 when the user
// asked for -h or --help (the flag package printed the usage), else 2.
func parseFailed(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// cmdVersion prints the version, as text or JSON.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbd version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "text", "output `format`: text or json")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	switch *output {
	case "text":
		fmt.Fprintln(stdout, versionString())
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Version   string `json:"version"`
			GoVersion string `json:"goversion"`
			OS        string `json:"os"`
			Arch      string `json:"arch"`
		}{version, runtime.Version(), runtime.GOOS, runtime.GOARCH})
	default:
		fmt.Fprintf(stderr, "lbd version: -o must be text or json, not %q\n", *output)
		return exitUsage
	}
	return exitOK
}

func versionString() string {
	return fmt.Sprintf("lbd %s (%s %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
