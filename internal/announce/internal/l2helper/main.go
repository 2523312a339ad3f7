// Command l2helper runs the L2 announcer for the privileged tests of package
// announce, inside a network namespace (ip netns exec NS l2helper). Each
// line on stdin is a JSON desired set, handed to Set; it answers each with
// one line, "ok" or "error: ...". Two other lines are commands: "peers
// MAC,MAC..." calls SetPeers and answers "ok"; "conflicts" answers with
// Conflicts() as one JSON line. With -detect, conflict detection is on. At
// the end of stdin it closes the announcer and exits, non-zero if any
// goroutine outlives Close.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
)

type entry struct {
	Addr      netip.Addr `json:"addr"`
	Interface string     `json:"iface"`
	Reason    string     `json:"reason"`
}

func main() {
	var g config.Gratuitous
	flag.IntVar(&g.Count, "count", 3, "gratuitous packets per burst")
	flag.DurationVar(&g.Interval, "interval", 100*time.Millisecond, "time between burst packets")
	flag.DurationVar(&g.Refresh, "refresh", 0, "time between refreshes (0: none)")
	detect := flag.Bool("detect", false, "detect address conflicts")
	var p config.ConflictProbe
	flag.IntVar(&p.Count, "probe-count", 3, "conflict probes")
	flag.DurationVar(&p.Interval, "probe-interval", 100*time.Millisecond, "time between conflict probes")
	flag.DurationVar(&p.Recheck, "recheck", 30*time.Second, "quiet period before a conflict is probed again")
	flag.Parse()
	if !*detect {
		p = config.ConflictProbe{}
	}
	if err := run(g, p); err != nil {
		fmt.Fprintln(os.Stderr, "l2helper:", err)
		os.Exit(1)
	}
}

func run(g config.Gratuitous, p config.ConflictProbe) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := announce.NewL2(log, announce.SystemClock{}, g, nil)
	if err != nil {
		return err
	}
	if p.Count > 0 {
		err := l.DetectConflicts(announce.ConflictOptions{
			Probe: p,
			OnConflict: func(c announce.Conflict) {
				log.Info("OnConflict", "ip", c.Addr, "mac", c.MAC.String(), "reason", c.Reason)
			},
			OnClear: func(c announce.Conflict) { log.Info("OnClear", "ip", c.Addr, "mac", c.MAC.String()) },
		})
		if err != nil {
			return err
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if cmd, arg, _ := strings.Cut(in.Text(), " "); cmd == "peers" || cmd == "conflicts" {
			fmt.Println(command(l, cmd, arg))
			continue
		}
		var set []entry
		if err := json.Unmarshal(in.Bytes(), &set); err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		desired := make([]announce.Announcement, len(set))
		for i, e := range set {
			desired[i] = announce.Announcement{Addr: e.Addr, Interface: e.Interface, Reason: e.Reason}
		}
		if err := l.Set(desired); err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		fmt.Println("ok")
	}
	if err := l.Close(); err != nil {
		return err
	}
	return checkLeaks()
}

func command(l *announce.L2, cmd, arg string) string {
	if cmd == "conflicts" {
		type conflict struct {
			Addr   netip.Addr `json:"addr"`
			Iface  string     `json:"iface"`
			MAC    string     `json:"mac"`
			Reason string     `json:"reason"`
		}
		out := []conflict{}
		for _, c := range l.Conflicts() {
			out = append(out, conflict{c.Addr, c.Interface, c.MAC.String(), string(c.Reason)})
		}
		b, _ := json.Marshal(out)
		return string(b)
	}
	var macs []net.HardwareAddr
	for s := range strings.SplitSeq(arg, ",") {
		if s == "" {
			continue
		}
		m, err := net.ParseMAC(s)
		if err != nil {
			return "error: " + err.Error()
		}
		macs = append(macs, m)
	}
	l.SetPeers(macs)
	return "ok"
}

// checkLeaks fails if goroutines other than main outlive Close (after a
// moment for those that called Done to return).
func checkLeaks() error {
	for range 20 {
		if runtime.NumGoroutine() == 1 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	return fmt.Errorf("%d goroutines left after Close:\n%s", runtime.NumGoroutine(), buf)
}
