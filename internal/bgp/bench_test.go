package bgp_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// The benchmarks run against FRR in a lab, like TestFRR. Run them with
// the helper built without the race detector:
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/bgp/

// BenchmarkEstablished: from starting the speaker process to FRR showing
// the IPv4 session Established.
func BenchmarkEstablished(b *testing.B) {
	netlab.Need(b, "vtysh")
	l := newLab(b)
	f := netlab.StartFRR(b, l.router, frrConfig(""))
	helperPath(b)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		s := l.startSpeaker(l.nodes[0], nodeConfig(nodeAS, ""))
		f.WaitEstablished(10*time.Second, nodeV4[0])
		total += time.Since(start)
		s.stop()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, up := f.Established()[nodeV4[0]]; !up || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/established")
}

// BenchmarkConverge1000: three nodes announce 1000 host routes each (the
// same 1000 addresses); the time until the router's kernel has all 1000
// with three next hops each, then until all are gone after a withdraw.
func BenchmarkConverge1000(b *testing.B) {
	netlab.Need(b, "vtysh")
	l := newLab(b)
	f := netlab.StartFRR(b, l.router, frrConfig(""))
	helperPath(b)
	var sp []*speaker
	for _, n := range l.nodes {
		sp = append(sp, l.startSpeaker(n, nodeConfig(nodeAS, "")))
	}
	f.WaitEstablished(10*time.Second, nodeV4...)
	// Documentation space has 256 IPv4 addresses in 192.0.2.0/24: 250
	// IPv4 routes and 750 IPv6 ones from 2001:db8:5::/64.
	var rs []string
	for i := range 1000 {
		if i < 250 {
			rs = append(rs, fmt.Sprintf(`{"prefix": "192.0.2.%d/32"}`, i))
		} else {
			rs = append(rs, fmt.Sprintf(`{"prefix": "2001:db8:5::%x/128"}`, i))
		}
	}
	all := `{"routes": [` + strings.Join(rs, ",") + `]}`
	var up, down time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		for _, s := range sp {
			if got := s.send(all); got != "ok" {
				b.Fatal(got)
			}
		}
		waitRoutes(b, l, 1000, 3)
		up += time.Since(start)
		start = time.Now()
		for _, s := range sp {
			s.announce()
		}
		waitRoutes(b, l, 0, 0)
		down += time.Since(start)
	}
	b.ReportMetric(up.Seconds()/float64(b.N), "s/converge-1000")
	b.ReportMetric(down.Seconds()/float64(b.N), "s/withdraw-1000")
}

// waitRoutes waits until the router's kernel has n BGP routes (IPv4 and
// IPv6 together), each with hops next hops.
func waitRoutes(b *testing.B, l *bgpLab, n, hops int) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := 0
		for _, fam := range []string{"-4", "-6"} {
			out, err := l.router.Run("ip", fam, "-j", "route", "show", "proto", "bgp")
			if err != nil {
				b.Fatal(err, out)
			}
			var routes []struct {
				Gateway  string            `json:"gateway"`
				Nexthops []json.RawMessage `json:"nexthops"`
			}
			json.Unmarshal([]byte(out), &routes)
			for _, r := range routes {
				h := len(r.Nexthops)
				if r.Gateway != "" {
					h = 1
				}
				if h == hops {
					got++
				}
			}
			if n == 0 {
				got += len(routes)
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("router has %d routes with %d next hops, want %d", got, hops, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
