package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes s as `lbd status` shows it, with ages relative to now.
func WriteText(w io.Writer, s *Status, now time.Time) {
	fmt.Fprintf(w, "lbd %s on node %s (pid %d, up %s)\n", s.Version, s.Node, s.PID, now.Sub(s.Started).Round(time.Second))
	fmt.Fprintf(w, "config:      %s (hash %s)\n", s.Config.File, s.Config.Hash)
	fmt.Fprintf(w, "             %s\n", s.Config.Summary)
	fmt.Fprintf(w, "kubernetes:  %s\n", s.Kubernetes)
	fmt.Fprintf(w, "allocator:   %s\n", s.Allocator)
	for _, p := range s.Pools {
		used := "use known on the allocator holder"
		if p.Used != nil {
			used = fmt.Sprintf("%d used (%.0f%%)", *p.Used, 100*float64(*p.Used)/float64(max(p.Size, 1)))
		}
		size := count(p.Size, "address", "addresses")
		if p.Size == ^uint64(0) {
			size = "2^64 or more addresses"
		}
		fmt.Fprintf(w, "pool:        %s %s: %s, %s\n", p.Pool, p.Family, size, used)
	}
	if cp := s.ControlPlane; cp != nil {
		fmt.Fprintf(w, "control VIP: %s on %s: %s\n", strings.Join(cp.VIP, ", "), cp.Interface, cp.State)
		holder := cp.Holder
		if holder == "" {
			holder = "nobody"
		}
		api := "ready"
		if !cp.LocalAPIReady {
			api = "not ready"
			if cp.LocalAPIDetail != "" {
				api += ": " + cp.LocalAPIDetail
			}
		}
		fmt.Fprintf(w, "             Lease held by %s; local API server %s %s\n", holder, cp.LocalAPIServer, api)
	}
	if p := s.Peers; p != nil {
		state := p.State
		if state == "" {
			state = "starting"
		}
		fmt.Fprintf(w, "peers:       %s: %s\n", state, p.Why)
	}
	if s.Agent != "" {
		fmt.Fprintf(w, "agent:       %s\n", s.Agent)
	}
	if len(s.Addresses) > 0 {
		fmt.Fprintf(w, "addresses:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SERVICE\tIP\tMODE\tOWNER\tANNOUNCING\tREASON\tINTERFACES")
		for _, a := range s.Addresses {
			yes := "no"
			if a.Announcing {
				yes = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Service, a.IP, a.Mode, dash(a.Owner), yes, a.Reason, dash(strings.Join(a.Interfaces, ",")))
		}
		tw.Flush()
	}
	if s.BGP != nil {
		fmt.Fprintf(w, "bgp:         AS %d, router ID %s, %s\n", s.BGP.ASN, s.BGP.RouterID, count(uint64(s.BGP.Routes), "route", "routes"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PEER\tADDRESS\tAS\tSTATE\tSINCE\tPREFIXES\tUPDATES\tPASSWORD\tPROBLEM")
		for _, p := range s.BGP.Peers {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s ago\t%d\t%d\t%s\t%s\n", p.Name, p.Address, p.ASN, p.State,
				now.Sub(p.Since).Round(time.Second), p.Advertised, p.UpdatesSent, dash(p.PasswordFingerprint), dash(p.Problem))
		}
		tw.Flush()
		for _, p := range s.BGP.Peers {
			if b := p.BFD; b != nil {
				line := fmt.Sprintf("  bfd %s: %s (router %s), tx every %s, down after %s of silence, since %s ago",
					p.Name, b.State, b.RemoteState, b.TxInterval, b.DetectTime, now.Sub(b.Since).Round(time.Second))
				if b.LastDownDiag != "" {
					line += "; last down: " + b.LastDownDiag
				}
				fmt.Fprintln(w, line)
			}
		}
	}
	r := s.LastReload
	fmt.Fprintf(w, "last reload: %s from %s, %s ago: %s\n", r.At.Local().Format(time.DateTime), r.Source, now.Sub(r.At).Round(time.Second), r.Result)
	if r.Error != "" {
		for line := range strings.SplitSeq(r.Error, "\n") {
			fmt.Fprintf(w, "             %s\n", line)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// count is "1 address", "2 addresses".
func count(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
