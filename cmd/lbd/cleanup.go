package main

import (
	"fmt"
	"io"
	"os"

	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
)

// cmdCleanup removes what a killed lbd may have left on this node: the
// control-plane VIPs on their interface. It is the unit's ExecStopPost, so
// it runs after every stop, clean or not; an address that is not there is
// not an error. (A VIP also expires by itself: it is added with a finite
// lifetime.) Exit 0: nothing left; 1: something could not be removed;
// 2: the file cannot be read.
func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("cleanup", stderr)
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	if _, err := os.Stat(*path); err != nil {
		fmt.Fprintf(stderr, "lbd cleanup: %v\n", err)
		return exitUsage
	}
	// Read leniently: the file may have been broken after lbd started, and
	// the VIP must go all the same.
	iface, addrs := config.VIPs(*path)
	if iface == "" || len(addrs) == 0 {
		fmt.Fprintln(stdout, "lbd cleanup: no control-plane VIP in the configuration; nothing to remove")
		return exitOK
	}
	if err := announce.RemoveStale(iface, addrs); err != nil {
		fmt.Fprintf(stderr, "lbd cleanup: %v\n", err)
		return exitInvalid
	}
	fmt.Fprintf(stdout, "lbd cleanup: control-plane VIP %v absent from %s\n", addrs, iface)
	return exitOK
}
