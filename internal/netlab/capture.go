package netlab

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A Capture is tcpdump writing what crosses one interface of a namespace
// to a file, for a test to count packets in or to print when it fails.
type Capture struct {
	// Pcap is the file tcpdump writes.
	Pcap    string
	cmd     *exec.Cmd
	stopped bool
}

// StartCapture runs tcpdump on iface in namespace ns with a capture
// filter, and returns once it captures. It is stopped when the test ends,
// or earlier by Stop.
func StartCapture(t testing.TB, ns, iface, filter string) *Capture {
	t.Helper()
	c := &Capture{Pcap: filepath.Join(t.TempDir(), ns+"-"+iface+".pcap")}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-i", iface, "-w", c.Pcap, filter)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	// tcpdump says "listening on" once the capture is running.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "listening on") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("tcpdump exited before it was listening")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump not listening after 5s")
	}
	return c
}

// Capture is StartCapture on h's eth0.
func (h *Host) Capture(t testing.TB, filter string) *Capture {
	t.Helper()
	return StartCapture(t, h.NS, Interface, filter)
}

// Stop ends tcpdump, which writes out what it holds. Stopping twice is
// stopping once.
func (c *Capture) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	c.cmd.Process.Signal(os.Interrupt)
	c.cmd.Wait()
}

// Read returns the packets that match filter, one line each, with link
// addresses and the time of day to the microsecond (tcpdump -e -tttt).
// The capture may still run: a packet half written ends the read, and
// what came before it is returned.
func (c *Capture) Read(filter string) []string {
	out, _ := exec.Command("tcpdump", "-n", "-e", "-tttt", "-r", c.Pcap, filter).Output()
	var lines []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

// A Packet is one line of Read, with its time.
type Packet struct {
	At   time.Time
	Line string
}

// Packets is Read with each line's time parsed (tcpdump prints the local
// time of day); lines without one are left out.
func (c *Capture) Packets(filter string) []Packet {
	var ps []Packet
	for _, line := range c.Read(filter) {
		if len(line) < 26 {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", line[:26], time.Local)
		if err != nil {
			continue
		}
		ps = append(ps, Packet{At: at, Line: line})
	}
	return ps
}

// TCPConns groups the packets by the TCP connections of client (an IP
// address as tcpdump prints it): the client's port to its packets.
func TCPConns(ps []Packet, client string) map[int][]Packet {
	re := regexp.MustCompile(regexp.QuoteMeta(client) + `\.(\d+)[ :]`)
	conns := map[int][]Packet{}
	for _, p := range ps {
		m := re.FindStringSubmatch(p.Line)
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[1])
		conns[port] = append(conns[port], p)
	}
	return conns
}

// BegunIn returns the port of the connection in conns whose first
// packet is the earliest in [from, to) (0 if none): the one a request
// made at from and given up at to opened, when it could not say which
// (its connection was never established).
func BegunIn(conns map[int][]Packet, from, to time.Time) int {
	best := 0
	var at time.Time
	for port, ps := range conns {
		if first := ps[0].At; !first.Before(from) && first.Before(to) && (best == 0 || first.Before(at)) {
			best, at = port, first
		}
	}
	return best
}

// Format prints ps one per line, indented, times as hh:mm:ss.uuuuuu,
// without the fields that only make the lines long (ethertype, frame
// length, window, TCP options).
func Format(ps []Packet) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "    %s\n", noise.ReplaceAllString(p.Line[11:], ""))
	}
	return b.String()
}

var noise = regexp.MustCompile(`, ethertype \S+ \(0x[0-9a-f]+\), length \d+|, win \d+|, options \[[^\]]*\]`)
