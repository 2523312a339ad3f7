package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/status"
)

// ctlFlags adds --socket to the common flags. The socket defaults to the
// file's listen.socket, read leniently: the file may be the invalid one
// the daemon is about to reject.
func ctlFlags(name string, stderr io.Writer) (*flag.FlagSet, func() string) {
	fs, path := newFlags(name, stderr)
	socket := fs.String("socket", "", "control socket `path` (default: listen.socket from the file, else "+config.DefaultSocket+")")
	return fs, func() string {
		if *socket != "" {
			return *socket
		}
		return config.SocketPath(*path)
	}
}

// cmdReload asks the running daemon to reload its file and waits for the
// verdict, so `ExecReload=lbd reload` makes `systemctl reload` fail when the
// new file is rejected. Exit 0: applied or unchanged; 1: rejected (the old
// configuration stays in force); 2: the daemon cannot be reached.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs, socket := ctlFlags("reload", stderr)
	dry := fs.Bool("dry-run", false, "check the file against the running daemon and say what applying it would change (sessions reset, addresses stranded, the VIP), without applying it")
	output := fs.String("o", "text", "output `format`: text or json")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "lbd reload: -o must be text or json, not %q\n", *output)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	command := "reload"
	if *dry {
		command = "dry-run"
	}
	resp, err := daemon.Call(ctx, socket(), daemon.Request{Command: command})
	if *output == "json" {
		// For machines: {"ok", "dry_run", "message", "error"}; the exit
		// status is the same as in text.
		out := struct {
			OK      bool   `json:"ok"`
			DryRun  bool   `json:"dry_run"`
			Message string `json:"message,omitempty"`
			Error   string `json:"error,omitempty"`
		}{resp.OK, *dry, resp.Message, resp.Error}
		code := exitOK
		switch {
		case err != nil:
			out.OK, out.Error, code = false, err.Error(), exitUsage
		case !resp.OK:
			code = exitInvalid
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "lbd reload: %v\n", err)
		return exitUsage
	}
	if !resp.OK && *dry {
		fmt.Fprintf(stderr, "lbd reload --dry-run: would be rejected; nothing was changed:\n%s\n", resp.Error)
		return exitInvalid
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "lbd reload: rejected; the previous configuration stays in force:\n%s\n", resp.Error)
		return exitInvalid
	}
	if *dry {
		fmt.Fprintf(stdout, "lbd reload --dry-run: %s\n", resp.Message)
		return exitOK
	}
	fmt.Fprintf(stdout, "lbd reload: %s\n", resp.Message)
	return exitOK
}

// cmdStatus shows what the running daemon is doing.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs, socket := ctlFlags("status", stderr)
	output := fs.String("o", "text", "output `format`: text or json")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "lbd status: -o must be text or json, not %q\n", *output)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := daemon.Call(ctx, socket(), daemon.Request{Command: "status"})
	if err != nil {
		fmt.Fprintf(stderr, "lbd status: %v\n", err)
		return exitUsage
	}
	if !resp.OK || resp.Status == nil {
		fmt.Fprintf(stderr, "lbd status: %s\n", resp.Error)
		return exitInvalid
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Status)
		return exitOK
	}
	status.WriteText(stdout, resp.Status, time.Now())
	return exitOK
}
