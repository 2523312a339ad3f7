// Command viphelper runs the VIP announcer for the privileged tests of
// package announce, inside a network namespace (ip netns exec NS viphelper).
// Each line on stdin is either a JSON desired set, handed to Set, or
// "stale IFACE ADDR...", handed to RemoveStale; it answers each with one
// line, "ok" or "error: ...". At the end of stdin it closes the announcer
// and exits.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/lbdproject/lbd/internal/announce"
)

type entry struct {
	Addr      netip.Addr `json:"addr"`
	Interface string     `json:"iface"`
	Reason    string     `json:"reason"`
}

func main() {
	lifetime := flag.Duration("lifetime", 30*time.Second, "lifetime of the added addresses")
	flag.Parse()
	if err := run(*lifetime); err != nil {
		fmt.Fprintln(os.Stderr, "viphelper:", err)
		os.Exit(1)
	}
}

func run(lifetime time.Duration) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, err := announce.NewVIP(log, lifetime)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := do(v, in.Text()); err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		fmt.Println("ok")
	}
	return v.Close()
}

func do(v *announce.VIP, line string) error {
	if f := strings.Fields(line); len(f) >= 2 && f[0] == "stale" {
		var addrs []netip.Addr
		for _, s := range f[2:] {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			addrs = append(addrs, a)
		}
		return announce.RemoveStale(f[1], addrs)
	}
	var set []entry
	if err := json.Unmarshal([]byte(line), &set); err != nil {
		return err
	}
	desired := make([]announce.Announcement, len(set))
	for i, e := range set {
		desired[i] = announce.Announcement{Addr: e.Addr, Interface: e.Interface, Reason: e.Reason}
	}
	return v.Set(desired)
}
