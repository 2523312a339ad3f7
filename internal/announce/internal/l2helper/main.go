// Command l2helper runs the L2 announcer for the privileged tests of package
// announce, inside a network namespace (ip netns exec NS l2helper). Each
// line on stdin is a JSON desired set, handed to Set; it answers each with
// one line, "ok" or "error: ...". At the end of stdin it closes the
// announcer and exits, non-zero if any goroutine outlives Close.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
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
	flag.Parse()
	if err := run(g); err != nil {
		fmt.Fprintln(os.Stderr, "l2helper:", err)
		os.Exit(1)
	}
}

func run(g config.Gratuitous) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := announce.NewL2(log, announce.SystemClock{}, g, nil)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
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
