package netlab_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// TestCapture: a capture holds a request's connection, found by the port
// GetConn returns, and a connection nothing answered.
func TestCapture(t *testing.T) {
	netlab.Need(t, "ping", "tcpdump", "python3")
	l := netlab.New(t)
	a := l.AddHost("a", "192.0.2.1/24")
	b := l.AddHost("b", "192.0.2.2/24")
	l.WaitReachable(a, "192.0.2.2", 5*time.Second)
	srv := b.Command("python3", "-m", "http.server", "80", "--bind", "192.0.2.2")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// 192.0.2.9 resolves to a MAC no host has: its SYNs go unanswered.
	a.Must("ip", "neigh", "add", "192.0.2.9", "lladdr", "02:00:00:00:00:09", "dev", netlab.Interface)

	c := a.Capture(t, "tcp port 80")
	var port int
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		_, port, err = a.GetConn("192.0.2.2", 2*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the server in b: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := time.Now()
	_, lost, err := a.GetConn("192.0.2.9", 500*time.Millisecond)
	if err == nil || lost != 0 {
		t.Fatalf("request to a MAC no host has: port %d, error %v; want no connection", lost, err)
	}
	c.Stop()

	conns := netlab.TCPConns(c.Packets("tcp port 80"), "192.0.2.1")
	got := netlab.Format(conns[port])
	if !strings.Contains(got, "192.0.2.1."+strconv.Itoa(port)+" > 192.0.2.2.80: Flags [S]") || !strings.Contains(got, "192.0.2.2.80 > 192.0.2.1."+strconv.Itoa(port)+": Flags [S.]") {
		t.Errorf("the packets of port %d hold no SYN and SYN-ACK:\n%s", port, got)
	}
	un := netlab.BegunIn(conns, before, time.Now())
	if un == 0 || un == port || len(conns[un]) == 0 {
		t.Fatalf("the connection begun after %s is port %d, want the unanswered one (not %d); all:\n%v", before, un, port, conns)
	}
	for _, p := range conns[un] {
		if !strings.Contains(p.Line, "> 192.0.2.9.80: Flags [S]") {
			t.Errorf("the unanswered connection holds more than SYNs: %s", p.Line)
		}
	}
	if got := netlab.BegunIn(conns, time.Now(), time.Now().Add(time.Hour)); got != 0 {
		t.Errorf("a connection begun after the last request: port %d", got)
	}
}
